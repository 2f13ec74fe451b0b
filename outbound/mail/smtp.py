"""One mail handed to an SMTP server with smtplib: blocking, so the service runs ``send`` in the one executor
(daemon.blocking.run_blocking). aiosmtplib is not a dependency: smtplib in the executor is enough for one mail
every few minutes.

Modes: ``plain`` (SMTP, port 25/587), ``implicit`` (SMTPS: TLS from the first byte, port 465) and ``starttls``
(plain, then STARTTLS; refused when the server does not offer it: nothing goes in clear). TLS verifies the server's
certificate and host name with the context the caller gives (the gateway's CA store). Every socket operation has
``timeout``. Every failure comes out as ``MailFailure`` with a catalogue key and its parameters.
"""

import smtplib
import ssl

from daemon import i18n

PLAIN, IMPLICIT, STARTTLS = "plain", "implicit", "starttls"


class MailFailure(Exception):
    """Why a mail did not go: ``key`` and ``params`` for the catalogue (mail.error.*); str() is the English."""

    def __init__(self, key, **params):
        self.key = key
        self.params = dict((name, _short(value)) for name, value in params.items())
        Exception.__init__(self, i18n.text(key, "en", **self.params))

    def text(self):
        return {"key": self.key, "params": self.params}


def _short(value, limit=160):
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, (int, float)):
        return value
    return " ".join(str(value).split())[:limit]


class Server:
    """Where and how to send: host, port, mode, credentials (None: no AUTH), timeout per socket operation."""

    __slots__ = ("helo", "host", "mode", "password", "port", "timeout", "user")

    def __init__(self, host, port, mode, user=None, password=None, timeout=20.0, helo="localhost"):
        if mode not in (PLAIN, IMPLICIT, STARTTLS):
            raise ValueError("no SMTP mode %r" % (mode,))
        self.host, self.port, self.mode = host, int(port), mode
        self.user, self.password = user, password
        self.timeout, self.helo = float(timeout), helo


def send(message, sender, recipients, server, context):
    """Hand ``message`` (an email.message.EmailMessage) to ``server`` for ``recipients``; the server's answer to
    the data ("250 ...") and the recipients it refused. Blocking: call it in the executor."""
    where = {"host": server.host, "port": server.port}
    try:
        return _session(message, sender, recipients, server, context)
    except smtplib.SMTPAuthenticationError as exc:
        raise MailFailure("mail.error.auth", code=exc.smtp_code, answer=exc.smtp_error, **where) from None
    except smtplib.SMTPNotSupportedError:
        raise MailFailure("mail.error.no_auth", **where) from None
    except smtplib.SMTPRecipientsRefused as exc:
        answers = "; ".join("%s %s" % (code, _short(text, 60)) for code, text in exc.recipients.values())
        raise MailFailure("mail.error.recipients", answer=answers, **where) from None
    except smtplib.SMTPResponseException as exc:        # sender refused, data refused, 4xx/5xx at any step
        raise MailFailure("mail.error.refused", code=exc.smtp_code, answer=exc.smtp_error, **where) from None
    except smtplib.SMTPServerDisconnected as exc:
        if isinstance(exc.__context__, TimeoutError):         # smtplib says a reply's timeout this way
            raise MailFailure("mail.error.timeout", seconds=server.timeout, **where) from None
        raise MailFailure("mail.error.disconnected", reason=exc, **where) from None
    except TimeoutError:                                   # socket.timeout, a TLS handshake's too
        raise MailFailure("mail.error.timeout", seconds=server.timeout, **where) from None
    except ssl.SSLCertVerificationError as exc:
        raise MailFailure("mail.error.certificate", reason=exc.verify_message or exc, **where) from None
    except ssl.SSLError as exc:
        raise MailFailure("mail.error.tls", reason=exc.reason or exc, **where) from None
    except smtplib.SMTPException as exc:
        raise MailFailure("mail.error.refused", code="", answer=exc, **where) from None
    except OSError as exc:
        raise MailFailure("mail.error.connect", reason=exc.strerror or exc, **where) from None


def _session(message, sender, recipients, server, context):
    if server.mode == IMPLICIT:
        client = smtplib.SMTP_SSL(server.host, server.port, local_hostname=server.helo, timeout=server.timeout,
                                  context=context)
    else:
        client = smtplib.SMTP(server.host, server.port, local_hostname=server.helo, timeout=server.timeout)
    try:
        client.ehlo_or_helo_if_needed()
        if server.mode == STARTTLS:
            if not client.has_extn("starttls"):
                raise MailFailure("mail.error.no_starttls", host=server.host, port=server.port)
            client.starttls(context=context)
            client.ehlo()
        if server.user is not None:
            client.login(server.user, server.password or "")
        code, answer = client.mail(sender)
        if code != 250:
            raise smtplib.SMTPSenderRefused(code, answer, sender)
        refused = {}
        for recipient in recipients:
            code, answer = client.rcpt(recipient)
            if code not in (250, 251):
                refused[recipient] = (code, answer)
        if len(refused) == len(recipients):
            client.rset()
            raise smtplib.SMTPRecipientsRefused(refused)
        code, answer = client.data(message.as_bytes())
        if code != 250:
            raise smtplib.SMTPDataError(code, answer)
        try:
            client.quit()
        except (smtplib.SMTPException, OSError):
            pass                        # the mail is accepted: a lost goodbye changes nothing
        return {"code": code, "answer": _short(answer, 400), "refused": sorted(refused)}
    finally:
        client.close()
