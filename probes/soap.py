"""soap+http:// and soap+https:// probes: fetch the WSDL, or POST an envelope.

Through :func:`probes.http.fetch`, like the http probe:

- When the URL's query asks for the WSDL (``?wsdl``, ``?WSDL``, ``?singleWsdl``),
  the probe GETs it and requires a WSDL document: a WSDL 1.1 ``definitions`` or
  WSDL 2.0 ``description`` root element in the WSDL namespace.
- Otherwise it POSTs a minimal SOAP 1.1 envelope with an empty body
  (``Content-Type: text/xml``, ``SOAPAction: ""``) and requires a SOAP
  ``Envelope`` back (1.1 or 1.2 namespace). A ``Fault`` proves a SOAP endpoint
  as well as a normal reply does (SOAP 1.1 returns faults with HTTP 500), so it
  is answered and the fault code and string are reported in ``details``.

XML safety: responses are at most the read cap, and any document with a
``<!DOCTYPE`` (and so any entity declaration) is refused before parsing, so
neither entity expansion nor external references can happen.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any
from urllib.parse import parse_qsl

from probes import http, tlsinfo
from probes.base import ProbeConfig, Sample, Target

SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
WSDL11 = "http://schemas.xmlsoap.org/wsdl/"
WSDL20 = "http://www.w3.org/ns/wsdl"

ENVELOPE = (
    '<?xml version="1.0" encoding="utf-8"?>'
    f'<soap:Envelope xmlns:soap="{SOAP11}"><soap:Body/></soap:Envelope>'
).encode()
POST_HEADERS = (
    ("Content-Type", "text/xml; charset=utf-8"),
    ("SOAPAction", '""'),
    ("Accept", "text/xml, application/soap+xml"),
)
WSDL_KEYS = frozenset({"wsdl", "singlewsdl"})


class UnsafeXML(ValueError):
    """The document declares a DTD; it is not parsed."""


def wants_wsdl(query: str) -> bool:
    return any(key.lower() in WSDL_KEYS for key, _ in parse_qsl(query, keep_blank_values=True))


def parse_xml(body: bytes) -> ET.Element:
    """Parse a response body, refusing DTDs (and therefore entities) outright."""
    if b"<!DOCTYPE" in body.upper() or b"<!ENTITY" in body.upper():
        raise UnsafeXML("the document declares a DTD")
    return ET.fromstring(body)


def _namespace(tag: str) -> str:
    return tag[1:].split("}", 1)[0] if tag.startswith("{") else ""


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _xml_or_error(response: http.HttpResponse, what: str) -> ET.Element | Sample:
    where = f"HTTP {response.status}, {response.header('content-type') or 'no content type'}"
    if response.truncated:
        return response.sample(ok=False, error=f"not a {what}: response over the cap ({where})")
    try:
        return parse_xml(response.body)
    except UnsafeXML as exc:
        if response.body.lstrip()[:14].lower() == b"<!doctype html":
            return response.sample(ok=False, error=f"not a {what}: the response is HTML ({where})")
        return response.sample(ok=False, error=f"not a {what}: refused to parse it, {exc}")
    except ET.ParseError as exc:
        snippet = response.body[:40]
        return response.sample(
            ok=False, error=f"not a {what}: the response is not XML ({where}, {exc}): {snippet!r}"
        )


def judge_wsdl(response: http.HttpResponse) -> Sample:
    root = _xml_or_error(response, "WSDL document")
    if isinstance(root, Sample):
        return root
    namespace, name = _namespace(root.tag), _local(root.tag)
    if (namespace, name) not in ((WSDL11, "definitions"), (WSDL20, "description")):
        return response.sample(
            ok=False, error=f"not a WSDL document: the root element is {root.tag!r}"
        )
    if response.status >= 400:
        return response.sample(ok=False, error=f"HTTP {response.status} {response.reason}".strip())
    facts: dict[str, Any] = {
        "wsdl_version": "1.1" if namespace == WSDL11 else "2.0",
        "target_namespace": root.get("targetNamespace"),
        "services": [s.get("name") for s in root.iter(f"{{{namespace}}}service")],
        "operations": len(list(root.iter(f"{{{namespace}}}operation"))),
    }
    return response.sample(soap={"wsdl": facts})


def judge_envelope(response: http.HttpResponse) -> Sample:
    root = _xml_or_error(response, "SOAP endpoint")
    if isinstance(root, Sample):
        return root
    namespace = _namespace(root.tag)
    if _local(root.tag) != "Envelope" or namespace not in (SOAP11, SOAP12):
        return response.sample(
            ok=False,
            error=f"not a SOAP endpoint: the root element is {root.tag!r}, not an Envelope",
        )
    facts: dict[str, Any] = {"version": "1.1" if namespace == SOAP11 else "1.2", "fault": None}
    fault = root.find(f"{{{namespace}}}Body/{{{namespace}}}Fault")
    if fault is not None:
        facts["fault"] = _fault(fault, namespace)
    return response.sample(soap=facts)


def _fault(fault: ET.Element, namespace: str) -> dict[str, str | None]:
    if namespace == SOAP11:
        # SOAP 1.1 fault children are unqualified.
        return {"code": fault.findtext("faultcode"), "string": fault.findtext("faultstring")}
    return {
        "code": fault.findtext(f"{{{SOAP12}}}Code/{{{SOAP12}}}Value"),
        "string": fault.findtext(f"{{{SOAP12}}}Reason/{{{SOAP12}}}Text"),
    }


async def probe(target: Target, config: ProbeConfig, deadline: float) -> Sample:
    # The answer is parsed whole, so it is kept whole: with --throughput's
    # 256 MiB cap a 100 MB answer took over 200 MB of memory. It transfers
    # nothing, so it reads what it does without --throughput: 64 KiB.
    config = config.model_copy(update={"throughput": False})
    try:
        if wants_wsdl(target.query):
            response = await http.fetch(target, config, deadline, keep_body=config.read_cap)
            return judge_wsdl(response)
        response = await http.fetch(
            target,
            config,
            deadline,
            method="POST",
            headers=POST_HEADERS,
            body=ENVELOPE,
            keep_body=config.read_cap,
        )
    except tlsinfo.CertificateVerifyError as exc:
        return http.verify_failure(exc)
    return judge_envelope(response)
