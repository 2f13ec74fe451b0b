"""The alarm report as a mail (SPEC §5; the newer WEBVIEW-L manual, "Email"): a summary — how many alarms started
since the last report, active and finished, which are still active, which await acknowledgement — and a table of
the new alarms (type, name, source, start, end, criticality), as one multipart/alternative message with a text
part and an HTML part, in English or French.

Pure: rows and lists in, an ``EmailMessage`` out. Everything that comes from devices or settings is escaped in
the HTML part and stripped of control characters in headers.
"""

import datetime
import email.policy
import html
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from daemon import i18n

CRITICALITY_RANK = {"information": 0, "non-critical": 1, "critical": 2}
SETTING_RANK = {"information": 0, "non_critical": 1, "critical": 2}      # notify.min_criticality's choices
COLUMNS = ("type", "name", "source", "start", "end", "criticality")
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def at_least(criticality, minimum):
    """Whether an alarm of ``criticality`` ("non-critical") reaches the setting ``minimum`` ("non_critical")."""
    return CRITICALITY_RANK.get(criticality, 0) >= SETTING_RANK.get(minimum, 2)


def one_line(value, limit=200):
    """A value from a device or a setting as one line of printable text, bounded."""
    return "".join(c if c.isprintable() else " " for c in str(value))[:limit]


class Clock:
    """How times read in a report: the gateway's local offset from UTC (Door.local_offset_s: the time zone, and an
    hour more under daylight saving), named as UTC+hh:mm."""

    def __init__(self, offset_min=0):
        self.offset = datetime.timedelta(minutes=int(offset_min or 0))

    def zone(self):
        minutes = int(self.offset.total_seconds() // 60)
        sign = "+" if minutes >= 0 else "-"
        return "UTC%s%02d:%02d" % (sign, abs(minutes) // 60, abs(minutes) % 60)

    def format(self, ts):
        if ts is None:
            return ""
        moment = datetime.datetime.fromtimestamp(float(ts), datetime.timezone.utc) + self.offset
        return moment.strftime(TIME_FORMAT)


def alarm_name(row, language):
    """A row's name in ``language``: a system alarm's from the catalogue (the status page's names), with its
    detail (its catalogue text when it has one); a device alarm's as the meter's log names it."""
    name = row.get("name", "")
    if row.get("category") == "system":
        key = "web.status.alarm.%s" % row.get("alarm")
        if i18n.has(key, language):
            name = i18n.text(key, language)
    detail = row.get("detail") or ""
    text = row.get("text")
    if isinstance(text, dict) and i18n.has(str(text.get("key")), language):
        params = text.get("params") if isinstance(text.get("params"), dict) else {}
        detail = i18n.text(text["key"], language, **params)
    return one_line("%s: %s" % (name, detail) if detail else name, 400)


def alarm_type(row, language):
    if row.get("category") == "system":
        return i18n.text("mail.type.system", language)
    key = "web.status.category.%s" % row.get("kind")
    return i18n.text(key, language) if i18n.has(key, language) else one_line(row.get("kind") or "")


def criticality_text(criticality, language):
    key = "web.status.criticality.%s" % criticality
    return i18n.text(key, language) if i18n.has(key, language) else one_line(criticality or "")


def source_text(row):
    product = row.get("product")
    source = row.get("source") or ""
    return one_line("%s (%s)" % (product, source) if product else source)


def cells(row, language, clock):
    """The table's cells of one row, as text."""
    end = clock.format(row["end"]) if row.get("end") is not None else i18n.text("mail.still_active", language)
    return {"type": alarm_type(row, language), "name": alarm_name(row, language), "source": source_text(row),
            "start": clock.format(row.get("since")), "end": end,
            "criticality": criticality_text(row.get("criticality"), language)}


class Report:
    """What one report says. ``rows``: the new alarms held since the last report (oldest first); ``more`` and
    ``more_finished``: how many older ones were dropped to bound it (and how many of those had ended);
    ``still_active`` / ``awaiting``: rows of the alarms active now / not yet acknowledged; ``identity``:
    {"name", "netid"}; ``interval_min``: the throttle, said in the footer."""

    def __init__(self, rows, more, more_finished, still_active, awaiting, identity, interval_min):
        self.rows = list(rows)
        self.more = int(more)
        self.more_finished = int(more_finished)
        self.still_active = list(still_active)
        self.awaiting = list(awaiting)
        self.identity = identity
        self.interval_min = interval_min

    def counts(self):
        """(started, active, finished) of the alarms started since the last report."""
        started = len(self.rows) + self.more
        finished = sum(1 for row in self.rows if row.get("end") is not None) + self.more_finished
        return started, started - finished, finished


def _names(identity):
    return {"gateway": one_line(identity.get("name") or "M-70", 64),
            "netid": one_line(identity.get("netid") or "-", 32)}


def _listing(rows, limit, language, clock):
    lines = ["%s — %s (%s)" % (alarm_name(row, language), source_text(row), clock.format(row.get("since")))
             for row in rows[:limit]]
    if len(rows) > limit:
        lines.append(i18n.text("mail.more_list", language, count=len(rows) - limit))
    return lines


def text_body(report, language, clock, now, list_limit):
    names = _names(report.identity)
    started, active, finished = report.counts()
    out = [i18n.text("mail.title", language, **names),
           i18n.text("mail.generated", language, time=clock.format(now), zone=clock.zone()), "",
           i18n.text("mail.summary", language),
           "  " + i18n.text("mail.summary.started", language, count=started, active=active, finished=finished),
           "  " + i18n.text("mail.summary.still_active", language, count=len(report.still_active))]
    out += ["    - " + line for line in _listing(report.still_active, list_limit, language, clock)]
    out.append("  " + i18n.text("mail.summary.awaiting_ack", language, count=len(report.awaiting)))
    out += ["    - " + line for line in _listing(report.awaiting, list_limit, language, clock)]
    out += ["", i18n.text("mail.table", language)]
    header = [i18n.text("mail.column." + column, language) for column in COLUMNS]
    out.append(" | ".join(header))
    for row in reversed(report.rows):                     # newest first, as the alarm views list them
        values = cells(row, language, clock)
        out.append(" | ".join(values[column] for column in COLUMNS))
    if report.more:
        out.append(i18n.text("mail.more", language, count=report.more, kept=len(report.rows)))
    out += ["", i18n.text("mail.footer", language, minutes=report.interval_min, **names)]
    return "\n".join(out) + "\n"


def html_body(report, language, clock, now, list_limit):
    esc = html.escape
    names = _names(report.identity)
    started, active, finished = report.counts()

    def listing(rows):
        items = "".join("<li>%s</li>" % esc(line) for line in _listing(rows, list_limit, language, clock))
        return "<ul>%s</ul>" % items if items else ""
    head = "".join("<th style=\"text-align:left;border-bottom:1px solid #999;padding:2px 8px\">%s</th>"
                   % esc(i18n.text("mail.column." + column, language)) for column in COLUMNS)
    body_rows = []
    for row in reversed(report.rows):
        values = cells(row, language, clock)
        body_rows.append("<tr>%s</tr>" % "".join("<td style=\"padding:2px 8px\">%s</td>" % esc(values[column])
                                                 for column in COLUMNS))
    if report.more:
        body_rows.append("<tr><td colspan=\"%d\" style=\"padding:2px 8px\"><em>%s</em></td></tr>" % (
            len(COLUMNS), esc(i18n.text("mail.more", language, count=report.more, kept=len(report.rows)))))
    parts = [
        "<!DOCTYPE html>", "<html lang=\"%s\"><head><meta charset=\"utf-8\"><title>%s</title></head>" % (
            language, esc(i18n.text("mail.title", language, **names))),
        "<body style=\"font-family:sans-serif\">",
        "<h1 style=\"font-size:1.2em\">%s</h1>" % esc(i18n.text("mail.title", language, **names)),
        "<p>%s</p>" % esc(i18n.text("mail.generated", language, time=clock.format(now), zone=clock.zone())),
        "<h2 style=\"font-size:1.1em\">%s</h2>" % esc(i18n.text("mail.summary", language)),
        "<p>%s</p>" % esc(i18n.text("mail.summary.started", language, count=started, active=active,
                                    finished=finished)),
        "<p>%s</p>%s" % (esc(i18n.text("mail.summary.still_active", language, count=len(report.still_active))),
                         listing(report.still_active)),
        "<p>%s</p>%s" % (esc(i18n.text("mail.summary.awaiting_ack", language, count=len(report.awaiting))),
                         listing(report.awaiting)),
        "<h2 style=\"font-size:1.1em\">%s</h2>" % esc(i18n.text("mail.table", language)),
        "<table style=\"border-collapse:collapse\"><thead><tr>%s</tr></thead><tbody>%s</tbody></table>" % (
            head, "".join(body_rows)),
        "<p style=\"color:#666\">%s</p>" % esc(i18n.text("mail.footer", language, minutes=report.interval_min,
                                                          **names)),
        "</body></html>"]
    return "\n".join(parts) + "\n"


def envelope(subject, sender, recipients, now, netid):
    """An empty message with its headers (control characters out of every value: no header injection)."""
    message = EmailMessage(policy=email.policy.SMTP)
    message["Subject"] = one_line(subject, 250)
    message["From"] = one_line(sender, 254)
    message["To"] = ", ".join(one_line(r, 254) for r in recipients)
    message["Date"] = formatdate(float(now), usegmt=True)
    # the domain given: make_msgid would otherwise ask the resolver for this host's name
    message["Message-ID"] = make_msgid("alarms", domain="m70-%s.invalid" % (one_line(netid, 32) or "gateway"))
    message["Auto-Submitted"] = "auto-generated"                  # RFC 3834: no auto-replies to it
    return message


def report_message(report, sender, recipients, language, clock, now, list_limit=20):
    """The report as a multipart/alternative mail (text, then HTML)."""
    names = _names(report.identity)
    started = report.counts()[0]
    message = envelope(i18n.text("mail.subject", language, count=started, **names), sender, recipients, now,
                       names["netid"])
    message.set_content(text_body(report, language, clock, now, list_limit))
    message.add_alternative(html_body(report, language, clock, now, list_limit), subtype="html")
    return message


def trial_message(identity, sender, recipients, language, clock, now):
    """The short mail of the page's *Send test e-mail* button (text and HTML too: it shows both render)."""
    names = _names(identity)
    message = envelope(i18n.text("mail.subject.test", language, **names), sender, recipients, now, names["netid"])
    body = i18n.text("mail.test.body", language, time=clock.format(now), zone=clock.zone(), **names)
    message.set_content(body + "\n")
    message.add_alternative("<!DOCTYPE html>\n<html lang=\"%s\"><body><p>%s</p></body></html>\n"
                            % (language, html.escape(body)), subtype="html")
    return message
