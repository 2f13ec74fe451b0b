"""The alarms held for the next report, and when the last report went: what a restart must not lose.

A row is one new alarm (system or device) as the report's table shows it. Rows wait here until a report that
holds them is accepted by the server; a failed send keeps them. The book is bounded: past ``max_rows`` the oldest
row goes and only its count is kept (``more``, and ``more_finished`` for those that had ended), so a flood of
alarms keeps its counts and the newest rows ("and K more"). A report in flight is a *batch*: rows dropped while it
is in flight and that it carries are not counted twice; rows that arrive meanwhile wait for the next one.

``as_doc`` / ``from_doc`` are the state file's JSON (the service writes it atomically).
"""

import logging

log = logging.getLogger("gateway.mail")

MAX_ROWS = 50
ROW_FIELDS = ("seq", "category", "kind", "alarm", "name", "detail", "text", "source", "product", "since", "end",
              "criticality")


class Batch:
    __slots__ = ("more", "more_finished", "rows", "seq")

    def __init__(self, rows, seq, more, more_finished):
        self.rows, self.seq, self.more, self.more_finished = rows, seq, more, more_finished


class Pending:
    def __init__(self, max_rows=MAX_ROWS):
        self.max_rows = max_rows
        self.rows = []                 # oldest first
        self.more = 0                  # rows dropped to bound the book, not yet reported
        self.more_finished = 0
        self.seq = 0                   # the last row's number
        self.last_sent = None          # gateway time of the last report the server accepted
        self._flight = None            # the batch being sent
        self._flight_dropped = [0, 0]  # rows of that batch dropped meanwhile (count, finished)

    def __len__(self):
        return len(self.rows) + self.more

    @staticmethod
    def _same(row, category, alarm, source):
        return row["category"] == category and row["alarm"] == alarm and row["source"] == source

    def add(self, row):
        """Hold a new alarm; False when it is held already (the same alarm, source and start)."""
        for held in self.rows:
            if self._same(held, row["category"], row["alarm"], row["source"]) and held["since"] == row["since"]:
                return False
        self.seq += 1
        row = dict((name, row.get(name)) for name in ROW_FIELDS)
        row["seq"] = self.seq
        self.rows.append(row)
        while len(self.rows) > self.max_rows:
            self._drop(self.rows.pop(0))
        return True

    def _drop(self, row):
        finished = 1 if row.get("end") is not None else 0
        if self._flight is not None and row["seq"] <= self._flight.seq:
            self._flight_dropped[0] += 1          # the report in flight carries it
            self._flight_dropped[1] += finished
        else:
            self.more += 1
            self.more_finished += finished

    def end(self, category, alarm, source, end):
        """The held alarm (category, alarm, source) still active has ended at ``end``; False when none is held."""
        for row in reversed(self.rows):
            if self._same(row, category, alarm, source) and row["end"] is None:
                row["end"] = end
                return True
        return False

    def begin(self):
        """The batch the next report carries (a snapshot: rows keep arriving while it is sent)."""
        self._flight = Batch([dict(row) for row in self.rows], self.seq, self.more, self.more_finished)
        self._flight_dropped = [0, 0]
        return self._flight

    def sent(self, batch, now):
        """The server accepted ``batch``: its rows and counts leave the book."""
        self.rows = [row for row in self.rows if row["seq"] > batch.seq]
        self.more = max(0, self.more - batch.more)
        self.more_finished = max(0, self.more_finished - batch.more_finished)
        self.last_sent = now
        self._flight, self._flight_dropped = None, [0, 0]

    def failed(self, batch):
        """``batch`` did not go: everything stays held; rows dropped meanwhile become counts."""
        self.more += self._flight_dropped[0]
        self.more_finished += self._flight_dropped[1]
        self._flight, self._flight_dropped = None, [0, 0]

    def clear(self):
        self.rows, self.more, self.more_finished = [], 0, 0
        self._flight_dropped = [0, 0]

    def as_doc(self):
        return {"version": 1, "last_sent": self.last_sent, "seq": self.seq, "rows": [dict(r) for r in self.rows],
                "more": self.more + self._flight_dropped[0],
                "more_finished": self.more_finished + self._flight_dropped[1]}

    @classmethod
    def from_doc(cls, doc, max_rows=MAX_ROWS):
        """The book a state file holds; an empty one (logged) for a document of another shape."""
        book = cls(max_rows)
        if not doc:
            return book
        try:
            last = doc.get("last_sent")
            book.last_sent = None if last is None else float(last)
            book.seq = int(doc.get("seq", 0))
            book.more, book.more_finished = int(doc.get("more", 0)), int(doc.get("more_finished", 0))
            for row in doc.get("rows", []):
                if not isinstance(row, dict) or not isinstance(row.get("seq"), int):
                    raise TypeError("a row without its number")
                kept = dict((name, row.get(name)) for name in ROW_FIELDS)
                kept["since"] = float(kept["since"]) if kept["since"] is not None else None
                book.rows.append(kept)
            del book.rows[:-max_rows]
        except (AttributeError, TypeError, ValueError) as exc:
            log.warning("mail state unreadable (%s): no report pending", exc)
            return cls(max_rows)
        return book
