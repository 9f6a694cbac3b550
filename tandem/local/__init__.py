"""The local cloud: moto + a local Lambda service + the real endpoint, built from template.yaml."""
