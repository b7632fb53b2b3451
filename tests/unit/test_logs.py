"""Log lines never carry a CDP token, and carry the session id when there is one."""

import logging

from browserfleet.logs import ContextFormatter, redact


def test_cdp_tokens_are_redacted() -> None:
    line = '127.0.0.1:5 - "WebSocket /cdp/3XMGxZRzfQbc4kZ2jqP4dc4Xy7H8eaYa/devtools/browser/x"'
    assert "3XMGxZRz" not in redact(line)
    assert "/cdp/<token>/devtools/browser/x" in redact(line)
    encoded = "live?wss=http%3A%2F%2Fh%2Fcdp%2FAbCdEfGhIjKlMnOp"
    assert "AbCdEfGh" not in redact(encoded)


def test_context_is_appended_and_tokens_scrubbed() -> None:
    record = logging.LogRecord(
        "x", logging.INFO, __file__, 1, "GET /cdp/%s/json", ("s3cretT0kenValue",), None
    )
    record.session_id = "abc"
    line = ContextFormatter("%(message)s").format(record)
    assert line == "GET /cdp/<token>/json session_id=abc"


def test_redaction_ignores_the_case_of_percent_encoding() -> None:
    for encoded in ("%2Fcdp%2FAbCdEfGhIjKl", "%2fcdp%2fAbCdEfGhIjKl", "%2FCDP%2fAbCdEfGhIjKl"):
        assert "AbCdEfGh" not in redact(f"live?wss=http%3A%2F%2Fh{encoded}")


def test_api_keys_and_proxy_passwords_are_redacted() -> None:
    line = "key bu_Zx9yW8vU7tS6rQ5p failed; upstream socks5://alice:s3cr3t-pw@10.0.0.1:1080 down"
    cleaned = redact(line)
    assert "Zx9yW8vU" not in cleaned
    assert "s3cr3t-pw" not in cleaned
    assert "socks5://alice:<password>@10.0.0.1:1080" in cleaned


def test_connect_urls_and_host_tokens_are_redacted() -> None:
    line = redact(
        "GET /connect?apiKey=plainsecret&customProxy.password=hunter2&timeout=5 "
        "Host: abcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrst.cdp.example.com"
    )
    assert "plainsecret" not in line and "hunter2" not in line
    assert "abcdefghijklmnopqrstuvwxyz234567" not in line
    assert "timeout=5" in line and ".cdp.example.com" in line
    assert "hunter2" not in redact("customProxy.password%3Dhunter2")
