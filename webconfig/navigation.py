"""Which pages the caller may open, for the pages' navigation links (GET /api/pages).

One table of rows (name, path, what opening it needs), so a new page is one
row; the gateway checks every page and request again itself, this only keeps
a page from offering a link its reader would be refused at.
"""

from daemon import api
from webconfig import auth
from webconfig.jsonio import reply as _json

# name, path, needs: "anyone", "session" (any logged-in profile), "password" (a logged-in profile that has a
# password), or the command the page's routes check (the link shows when the session's profile may run it).
# Issue 14's other pages add rows.
PAGES = (
    ("status", "/", "anyone"),
    ("home", "/home", "anyone"),             # issue 17: Home and the data views (for any signed-in profile)
    ("monitor", "/monitor", "anyone"),
    ("alarms", "/alarms", "anyone"),
    ("trends", "/trends", "anyone"),
    ("consumption", "/consumption", "read_consumption"),     # issue 17: Consumption (every profile)
    ("hierarchies", "/hierarchies", "edit_hierarchies"),     # issue 17: the hierarchies editor (Admin)
    ("photoview", "/photoview", "session"),        # issue 17: the photoview pages, and their editor (Admin)
    ("photoview-edit", "/photoview/edit", "edit_photoviews"),
    ("diagnosis", "/diagnosis", "anyone"),
    ("devices", "/devices/sources", "edit_topology"),
    ("settings", "/settings", "set_settings"),
    ("customisation", "/customisation", "customise"),
    ("accounts", "/accounts", "manage_accounts"),
    ("certificates", "/security/https", "manage_certificates"),
    ("firewall", "/security/firewall-rules", "manage_firewall"),
    ("system", "/system", "backup"),
    ("password", "/password", "password"),
    ("datamodels", "/datamodels", "edit_data_models"),     # issue 18: generic Modbus devices' data models (Admin)
    ("bluetooth", "/bluetooth", "read_bluetooth"),        # issue 18: the Bluetooth sensors heard, the sources (Admin)
)


def _may_open(door, caller, needs):
    if needs == "anyone":
        return True
    if caller is None:
        return False
    if needs == "session":           # any logged-in profile, User included (the data views)
        return True
    if needs == "password":
        return caller.profile != "user"
    try:
        door.as_caller(caller).check(needs)
    except api.Refused:
        return False
    return True


def mount(app, door):
    """Add GET /api/pages to ``app`` over the door (bound to User)."""

    @app.get("/api/pages", access="public")
    def pages():
        """[{page, path}] the caller may open, in menu order; ``logged_in`` says whether a session answered."""
        sid = auth.session_id()
        try:
            caller = door.session_caller(sid, auth.peer()) if sid else None
        except api.Refused:          # an ended session, or a password to change first: an anonymous reader
            caller = None
        return _json({"logged_in": caller is not None, "pages": [
            {"page": name, "path": path} for name, path, needs in PAGES if _may_open(door, caller, needs)]})
