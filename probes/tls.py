"""tls:// probe: TCP connect and TLS handshake time, and the certificate's facts.

Phases: ``connect`` and ``tls`` (the handshake); the latency is their sum.
``details`` holds the negotiated version and cipher, the leaf certificate's
subject, issuer, SANs, validity, whole days to expiry and SHA-256 fingerprint,
and the chain verification result (``verified`` and ``verify_error``).

A certificate that does not verify fails the sample (with OpenSSL's reason)
unless ``--insecure`` is given; either way its facts are reported, because
they are what this probe is for. Without ``--insecure`` they come from a second
handshake that does not verify, taken after the failed one and never timed.
"""

from __future__ import annotations

from probes import tlsinfo
from probes.base import ProbeConfig, Sample, Target


async def probe(target: Target, config: ProbeConfig, deadline: float) -> Sample:
    async with tlsinfo.until(deadline):
        try:
            conn = await tlsinfo.connect(target, tls=True, insecure=config.insecure)
        except tlsinfo.CertificateVerifyError as exc:
            facts = await tlsinfo.inspect_unverified(target)
            facts.update(verified=False, verify_error=exc.reason)
            return Sample(
                ok=False,
                error=str(exc),
                failure="tls",
                phases_ms={"connect": exc.connect_ms},
                details=facts,
            )
        await conn.close(tlsinfo.close_grace(deadline))
    latency = conn.connect_ms + (conn.tls_ms or 0.0)
    return Sample(latency_ms=round(latency, 3), phases_ms=conn.phases(), details=conn.tls)
