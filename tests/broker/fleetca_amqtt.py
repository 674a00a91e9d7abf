"""amqtt's HTTP auth plugin, plus the client certificate: the plugin the README shows.

amqtt 0.12.1's `amqtt.contrib.http.UserAuthHttpPlugin` sends only `username`, `password`
and `client_id`, so fleetca cannot tell a certificate client from anyone who types an API
key's username, and refuses both. amqtt cannot make a TLS listener require a client
certificate either (`Broker._create_ssl_context` sets `ssl.CERT_OPTIONAL`), so the broker
itself does not prove who the client is. This subclass adds what the TLS session holds:
the client certificate as PEM in `cert_pem`, which fleetca checks against the API key's
active certificates (so a revoked one is refused although amqtt reads no CRL).

Load it by its dotted name, with the same settings as the stock plugin:

    plugins:
      fleetca_amqtt.CertificateAuthHttpPlugin: {host: 127.0.0.1, port: 8080, user_uri: /broker/auth, ...}
"""

import ssl

from amqtt.contrib.http import UserAuthHttpPlugin
from amqtt.session import Session


class CertificateAuthHttpPlugin(UserAuthHttpPlugin):
    """`UserAuthHttpPlugin` that also sends the client certificate (`cert_pem`), if any."""

    async def authenticate(self, *, session: Session) -> bool | None:
        fields = {"username": session.username, "password": session.password, "client_id": session.client_id}
        der = session.ssl_object.getpeercert(binary_form=True) if session.ssl_object else None
        if der:
            fields["cert_pem"] = ssl.DER_cert_to_PEM_cert(der)
        # A client may send no password at all; leave it out rather than send null.
        fields = {k: v for k, v in fields.items() if v is not None}
        return await self._send_request(self.get_url(self.config.user_uri), fields)
