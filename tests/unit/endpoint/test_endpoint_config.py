"""Issue 11: every option reads TANDEM_* from the environment; a command-line flag wins."""

from __future__ import annotations

import pytest
from tandem_endpoint.__main__ import OPTIONS, parse_args, settings_from_args


def settings(argv: list[str], env: dict[str, str]):
    return settings_from_args(parse_args(argv, environ=env))


def test_template_variables_reach_the_batcher() -> None:
    s = settings([], {"TANDEM_MAX_BATCH_SIZE": "32", "TANDEM_MAX_WAIT_MS": "2.5"})
    assert s.batching.max_batch_size == 32 and s.batching.max_wait_ms == 2.5


def test_every_option_has_a_variable_and_the_variable_is_read() -> None:
    values = {
        "host": ("127.0.0.2", "127.0.0.2"),
        "port": ("9000", 9000),
        "model-dir": ("/models/x", "/models/x"),
        "backend": ("fake-fast", "fake-fast"),
        "max-batch-size": ("0", 0),
        "max-batch-tokens": ("65536", 65536),
        "max-wait-ms": ("1.5", 1.5),
        "max-queue": ("8192", 8192),
        "batching": ("false", False),
        "length-buckets": ("64,16,256", (16, 64, 256)),
        "tokenize-threads": ("3", 3),
        "tokenizer-fast-path": ("0", False),
        "request-deadline-s": ("30", 30.0),
        "warmup": ("on", "on"),
        "torch-dtype": ("bf16", "bf16"),
        "torch-attention": ("eager", "eager"),
        "torch-compile": ("reduce-overhead", "reduce-overhead"),
        "torch-static-shapes": ("yes", True),
        "torch-pin-memory": ("off", False),
        "torch-device": ("cpu", "cpu"),
        "enable-fault-injection": ("true", True),
        "log-level": ("DEBUG", "DEBUG"),
    }
    assert {o.flag for o in OPTIONS} == set(values), "a new option needs a case here"
    env = {o.env: values[o.flag][0] for o in OPTIONS}
    args = parse_args([], environ=env)
    for option in OPTIONS:
        assert getattr(args, option.flag.replace("-", "_")) == values[option.flag][1], option.env
    s = settings_from_args(args)
    assert s.backend == "fake-fast" and s.model_dir == "/models/x"
    assert s.batching.length_buckets == (16, 64, 256) and s.batching.tokenize_threads == 3
    assert s.backend_options.torch.dtype == "bf16" and s.backend_options.torch.static_shapes
    assert s.backend_options.widths == (16, 64, 256) and not s.backend_options.ascii_fast_path


def test_flags_override_the_environment() -> None:
    env = {"TANDEM_MAX_BATCH_SIZE": "32", "TANDEM_BATCHING": "false", "TANDEM_BACKEND": "numpy"}
    s = settings(["--max-batch-size", "8", "--batching", "--backend", "probe-zeros"], env)
    assert s.batching.max_batch_size == 8 and s.batching.batching and s.backend == "probe-zeros"
    assert not settings(["--no-batching"], {}).batching.batching


def test_defaults_without_environment() -> None:
    s = settings([], {})
    assert s.backend == "auto" and s.batching.max_batch_size == 64
    assert s.batching.batching and s.warmup == "auto" and s.backend_options.torch.dtype == "auto"
    assert s.batching.tokenize_threads >= 1


def test_length_buckets_none_is_one_bucket() -> None:
    assert settings([], {"TANDEM_LENGTH_BUCKETS": "none"}).batching.length_buckets == ()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TANDEM_MAX_BATCH_SIZE", "lots"),
        ("TANDEM_BATCHING", "maybe"),
        ("TANDEM_BACKEND", "tpu"),
        ("TANDEM_LENGTH_BUCKETS", "16,-1"),
    ],
)
def test_a_bad_variable_is_an_error_that_names_it(name, value, capsys) -> None:
    with pytest.raises(SystemExit):
        parse_args([], environ={name: value})
    assert name in capsys.readouterr().err


def test_log_level_falls_back_to_LOG_LEVEL() -> None:
    assert parse_args([], environ={"LOG_LEVEL": "WARNING"}).log_level == "WARNING"
    env = {"LOG_LEVEL": "WARNING", "TANDEM_LOG_LEVEL": "ERROR"}
    assert parse_args([], environ=env).log_level == "ERROR"
