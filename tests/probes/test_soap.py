"""soap+http(s) probe against real endpoints on 127.0.0.1."""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET

import pytest

from probes import soap, tlsinfo
from probes.base import ProbeConfig
from probes.runner import run_probe
from tests.probes.servers_http import (
    DOCTYPE_XML,
    Server,
    certificates,
    probe_now,
    running,
    start_http,
)


def soap_url(server: Server, path: str, scheme: str = "soap+http") -> str:
    return f"{scheme}://localhost:{server.port}{path}"


def test_envelope_is_posted_and_a_fault_proves_a_soap_endpoint(web: Server) -> None:
    before = len(web.requests)
    sample = probe_now(soap, soap_url(web, "/soap"))

    assert sample.ok, sample.error
    assert sample.details["status"] == 500  # SOAP 1.1 faults come with HTTP 500
    assert sample.details["soap"] == {
        "version": "1.1",
        "fault": {"code": "soap:Client", "string": "No operation in the request body"},
    }
    request = web.requests[before]
    assert request.method == "POST"
    assert request.headers["content-type"].startswith("text/xml")
    assert request.headers["soapaction"] == '""'
    root = ET.fromstring(request.body)
    assert root.tag == f"{{{soap.SOAP11}}}Envelope"


def test_a_normal_envelope_reply(web: Server) -> None:
    sample = probe_now(soap, soap_url(web, "/soap-ok"))

    assert sample.ok, sample.error
    assert sample.details["soap"] == {"version": "1.1", "fault": None}


@pytest.mark.parametrize("query", ["wsdl", "WSDL"])
def test_wsdl_is_fetched_when_the_url_asks_for_it(web: Server, query: str) -> None:
    before = len(web.requests)
    sample = probe_now(soap, soap_url(web, f"/soap?{query}"))

    assert sample.ok, sample.error
    assert sample.details["soap"]["wsdl"] == {
        "wsdl_version": "1.1",
        "target_namespace": "urn:switchboard:test",
        "services": ["PingService"],
        "operations": 1,
    }
    assert (web.requests[before].method, web.requests[before].target) == ("GET", f"/soap?{query}")


@pytest.mark.parametrize(
    ("path", "error"),
    [
        ("/html", "not a SOAP endpoint: the response is HTML (HTTP 200, text/html)"),
        ("/html?wsdl", "not a WSDL document: the response is HTML (HTTP 200, text/html)"),
        ("/json", "not a SOAP endpoint: the response is not XML (HTTP 200, application/json"),
        ("/rss", "not a SOAP endpoint: the root element is 'rss', not an Envelope"),
        ("/rss?wsdl", "not a WSDL document: the root element is 'rss'"),
        ("/doctype", "not a SOAP endpoint: refused to parse it, the document declares a DTD"),
    ],
)
def test_non_soap_responses_fail_clearly(web: Server, path: str, error: str) -> None:
    sample = probe_now(soap, soap_url(web, path))

    assert not sample.ok
    assert (sample.error or "").startswith(error)


def test_dtds_are_refused_before_parsing() -> None:
    with pytest.raises(soap.UnsafeXML):
        soap.parse_xml(DOCTYPE_XML.encode())
    with pytest.raises(soap.UnsafeXML):
        soap.parse_xml(b'<?xml version="1.0"?><!doctype x [<!entity a "b">]><x>&a;</x>')


@pytest.mark.parametrize(
    ("query", "wanted"),
    [
        ("wsdl", True),
        ("WSDL", True),
        ("singleWsdl", True),
        ("wsdl=1&x=2", True),
        ("", False),
        ("op=wsdlish", False),
        ("x=wsdl", False),
    ],
)
def test_wants_wsdl(query: str, wanted: bool) -> None:
    assert soap.wants_wsdl(query) is wanted


def test_soap_over_https_with_a_trusted_ca(monkeypatch: pytest.MonkeyPatch) -> None:
    with certificates() as certs:
        monkeypatch.setenv(tlsinfo.ENV_CA_FILE, str(certs.ca_file))
        with running(start_http(certs.trusted())) as server:
            sample = probe_now(soap, soap_url(server, "/soap?wsdl", "soap+https"))

    assert sample.ok, sample.error
    assert sample.details["tls"]["verified"] is True
    assert sample.details["soap"]["wsdl"]["services"] == ["PingService"]


def test_run_probe_soap(web: Server, allow_loopback: str) -> None:
    result = asyncio.run(
        run_probe(
            soap_url(web, "/soap-ok"),
            ProbeConfig(count=2, interval_ms=10, timeout_s=2),
            allowed_networks=allow_loopback,
        )
    )
    assert result.ok and result.kind == "soap+http" and result.succeeded == 2
    assert result.details["soap"]["fault"] is None
