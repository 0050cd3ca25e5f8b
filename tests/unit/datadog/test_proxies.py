"""Proxy variables read as Go's net/http reads them (golang.org/x/net/http/httpproxy)."""

from __future__ import annotations

import pytest
from yarl import URL

from exporter.datadog.proxies import ProxyError, ProxyRules, parse_proxy

PROXY = "http://proxy.internal:3128"


def route(url: str, **environ: str) -> str | None:
    """The proxy a request to ``url`` would use (shown form), or None for direct."""
    proxy = ProxyRules.from_environ(environ).proxy_for(URL(url))
    return proxy.shown if proxy is not None else None


@pytest.mark.parametrize(
    ("environ", "url", "expected"),
    [
        ({"HTTPS_PROXY": PROXY}, "https://api.datadoghq.com", PROXY),
        ({"https_proxy": PROXY}, "https://api.datadoghq.com", PROXY),
        ({"HTTPS_PROXY": PROXY, "https_proxy": "http://other:1"}, "https://a.example", PROXY),
        ({"HTTPS_PROXY": "", "https_proxy": PROXY}, "https://a.example", PROXY),
        ({"HTTP_PROXY": PROXY}, "https://api.datadoghq.com", None),  # no fallback
        ({"HTTPS_PROXY": PROXY}, "http://api.datadoghq.com", None),
        ({"HTTP_PROXY": PROXY}, "http://api.datadoghq.com", PROXY),
        ({"HTTPS_PROXY": "proxy.internal:3128"}, "https://a.example", PROXY),  # no scheme
        ({"HTTPS_PROXY": "10.0.0.1:3128"}, "https://a.example", "http://10.0.0.1:3128"),
        ({"HTTPS_PROXY": "https://proxy.internal"}, "https://a.example", "https://proxy.internal"),
    ],
)
def test_which_variable_applies(environ: dict[str, str], url: str, expected: str | None) -> None:
    assert route(url, **environ) == expected


@pytest.mark.parametrize(
    "url",
    ["https://localhost:8443", "https://127.0.0.1", "https://127.8.9.10:1", "https://[::1]:443"],
)
def test_loopback_is_never_proxied(url: str) -> None:
    assert route(url, HTTPS_PROXY=PROXY) is None


@pytest.mark.parametrize(
    ("no_proxy", "url", "direct"),
    [
        ("*", "https://api.datadoghq.com", True),
        ("datadoghq.com", "https://api.datadoghq.com", True),
        ("datadoghq.com", "https://datadoghq.com", True),
        ("DatadogHQ.com", "https://API.datadoghq.com", True),
        (".datadoghq.com", "https://api.datadoghq.com", True),
        (".datadoghq.com", "https://datadoghq.com", False),  # a leading dot: subdomains only
        ("*.datadoghq.com", "https://api.datadoghq.com", True),
        ("*.datadoghq.com", "https://datadoghq.com", False),
        ("datadoghq.com", "https://notdatadoghq.com", False),
        ("api.datadoghq.com:443", "https://api.datadoghq.com", True),  # the default port
        ("api.datadoghq.com:8443", "https://api.datadoghq.com", False),
        ("datadoghq.eu, api.datadoghq.com", "https://api.datadoghq.com", True),
        ("10.0.0.0/8", "https://10.1.2.3", True),
        ("10.0.0.0/8", "https://11.1.2.3", False),
        ("10.0.0.0/8", "https://api.datadoghq.com", False),
        ("10.1.2.3", "https://10.1.2.3:8443", True),
        ("10.1.2.3:8443", "https://10.1.2.3:8443", True),
        ("10.1.2.3:8443", "https://10.1.2.3", False),
        ("fd00::/8", "https://[fd00::1]", True),
        ("[fd00::1]:443", "https://[fd00::1]", True),
        ("not a/cidr, :80, ,", "https://api.datadoghq.com", False),  # malformed: ignored
    ],
)
@pytest.mark.parametrize("variable", ["NO_PROXY", "no_proxy"])
def test_no_proxy_matching(no_proxy: str, url: str, direct: bool, variable: str) -> None:
    expected = None if direct else PROXY
    assert route(url, HTTPS_PROXY=PROXY, **{variable: no_proxy}) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("socks5://user:hunter2hunter2@proxy:1080", "socks5:// proxies are not supported"),
        ("http://user:hunter2hunter2@proxy:99999", "not a valid proxy URL"),
        ("http://user:hunter2hunter2@:3128", "not a valid proxy URL"),
    ],
)
def test_an_unusable_proxy_is_refused_without_showing_the_login(value: str, message: str) -> None:
    with pytest.raises(ProxyError) as caught:
        ProxyRules.from_environ({"https_proxy": value})
    assert caught.value.variable == "https_proxy"
    assert message in str(caught.value) and "hunter2" not in str(caught.value)


def test_a_login_becomes_a_header_and_is_never_shown() -> None:
    proxy = parse_proxy("HTTPS_PROXY", "http://svc%40corp:p%3Ass%2Fw0rd!@proxy.internal:3128/")
    assert proxy is not None
    assert proxy.shown == "http://proxy.internal:3128"
    assert str(proxy.url) == "http://proxy.internal:3128"
    # base64("svc@corp:p:ss/w0rd!"): the login is decoded from the URL, as Go does.
    assert proxy.authorization == "Basic c3ZjQGNvcnA6cDpzcy93MHJkIQ=="
    assert "p:ss/w0rd!" in proxy.secrets and "p%3Ass%2Fw0rd%21" in proxy.secrets
    assert "w0rd" not in repr(proxy) and "w0rd" not in repr(ProxyRules(https=proxy))


def test_no_variables_means_no_proxy() -> None:
    assert route("https://api.datadoghq.com") is None
    assert ProxyRules.from_environ({}).secrets == []
