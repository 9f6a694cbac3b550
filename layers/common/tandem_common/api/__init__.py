"""The HTTP API's interface: routes and the error mapping of the api function's resolver."""
