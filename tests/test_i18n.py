"""The EN/FR message catalogue: complete, consistent, used by the schema, and safe to look up.

A missing French text, a translation that lost or renamed a ``{placeholder}``,
a key the code or the schema uses that the catalogue lacks: each fails here,
naming the key.
"""

import ast
import json
import logging
import os

import pytest

from daemon import i18n
from daemon.state import settings as settings_mod

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KEY_PREFIXES = ("error.", "setting.", "page.", "section.", "language.")

# The vendor's own words (WEBVIEW-M and M-70 manuals, French editions), and ours where they have none.
KNOWN_FRENCH = {
    "setting.network.dhcp.label": "Activer DHCP",
    "setting.network.netmask.label": "Masque de sous-réseau",
    "setting.network.vlan.enabled.label": "Activer filtrage VLAN",
    "setting.push.site_name.label": "Nom du site",
    "setting.push.folder.label": "Répertoire de destination",
    "setting.push.upload_log.label": "Télécharger les fichiers de logs",
    "setting.sntp.period_s.label": "Fréquence de mise à jour (s)",
    "setting.time.dst.label": "Activer l'heure d'été",
    "setting.bus.rs485.baud.label": "Vitesse",
    "setting.bus.rs485.parity.choice.E": "Paire",
    "setting.bacnet.enabled.label": "Activation BACnet",
    "setting.smtp.auth.label": "Activation de l'authentification",
    "setting.notify.sender.label": "Adresse mail expéditeur",
    "setting.notify.min_criticality.choice.non_critical": "Non critique",
    "setting.policy.ftps_mandatory.label": "Export de données, FTPS obligatoire",
    "setting.policy.modbus_write.label": "Fonction d'écriture Modbus",
    "setting.firewall.max_bandwidth_bps.label": "Débit maximum (bit/s)",
    "page.protocols.data_push.title": "Envoi de données",
    "page.devices.planning.title": "Planification",
    "page.security.firewall.title": "Pare-feu",
    "error.int.range": "{value} est hors de la plage {min}..{max}",
}


def schema_keys():
    keys = set()
    for spec in settings_mod.SCHEMA:
        keys.update((spec.label, spec.help, "page.%s.title" % spec.page,
                     "section.%s.%s.title" % (spec.page, spec.section)))
        if spec.type in ("enum", "intenum"):
            keys.update(spec.choice(value) for value in spec.bounds)
    return keys


def code_keys():
    """Every string literal in the daemon, the protocols and the web that looks like a catalogue key."""
    found = {}
    for room in ("daemon", "protocols", "webconfig"):
        for dirpath, dirnames, filenames in os.walk(os.path.join(REPO, room)):
            dirnames[:] = [d for d in dirnames if d != "__pycache__"]
            for name in filenames:
                if name.endswith(".py"):
                    path = os.path.join(dirpath, name)
                    with open(path, encoding="utf-8") as handle:
                        tree = ast.parse(handle.read(), path)
                    for node in ast.walk(tree):
                        if isinstance(node, ast.Constant) and isinstance(node.value, str) and \
                                node.value.startswith(KEY_PREFIXES) and "%" not in node.value and \
                                " " not in node.value and not node.value.endswith("."):
                            found[node.value] = "%s:%d" % (os.path.relpath(path, REPO), node.lineno)
    return found


def test_every_english_key_has_a_french_text_with_the_same_placeholders():
    english, french = i18n.CATALOGUES["en"], i18n.CATALOGUES["fr"]
    assert sorted(set(english) - set(french)) == [], "keys with no French translation"
    assert sorted(set(french) - set(english)) == [], "French keys English lacks (stale or misspelt)"
    for key, text in english.items():
        assert i18n.placeholders(french[key]) == i18n.placeholders(text), key
        assert text.strip() and french[key].strip(), key


def test_every_key_the_schema_and_the_code_use_is_in_the_catalogue():
    missing = sorted(key for key in schema_keys() if key not in i18n.CATALOGUES["en"])
    assert missing == []
    used = code_keys()
    assert "error.int.range" in used and "error.field" in used          # the scan sees the settings' refusals
    missing = sorted("%s (%s)" % (key, where) for key, where in used.items()
                     if key.startswith("error.") and key not in i18n.CATALOGUES["en"])
    assert missing == []
    # nothing in the catalogue is dead: a setting's key names a row, a page or section key names a screen
    names = set(spec.name for spec in settings_mod.SCHEMA)
    for key in i18n.CATALOGUES["en"]:
        if key.startswith("setting."):
            assert key in schema_keys(), key
        if key.startswith("error."):
            assert key in used, key
        if key.startswith(("page.", "section.")):
            assert key in schema_keys(), key
    assert len(names) == len(settings_mod.SCHEMA)


def test_french_is_french_where_the_words_differ():
    for key, text in KNOWN_FRENCH.items():
        assert i18n.text(key, "fr") == text, key
        assert i18n.text(key, "en") != text, key
    different = sum(1 for key in i18n.CATALOGUES["en"] if i18n.CATALOGUES["en"][key] != i18n.CATALOGUES["fr"][key])
    assert different > 0.8 * len(i18n.CATALOGUES["en"])      # protocol names (SNMP, MD5, FTP(S)...) may stay


def test_the_catalogue_files_are_plain_utf8_json_of_texts():
    for language in i18n.LANGUAGES:
        table = {}
        for path in i18n.catalogue_files(language):
            with open(path, "rb") as handle:
                table.update(json.loads(handle.read().decode("utf-8")))
        assert table == i18n.CATALOGUES[language]
        assert all(isinstance(value, str) and "\x00" not in value for value in table.values())


def test_lookup_fills_placeholders_and_falls_back_to_english_said_once(monkeypatch, caplog):
    assert i18n.text("error.int.range", "fr", value=0, min=1, max=247) == "0 est hors de la plage 1..247"
    assert i18n.text("error.int.range", "en", value=0, min=1, max=247) == "0 is outside 1..247"
    for asked in ("FR", "fr-CA", " fr"):
        assert i18n.language_of(asked) == "fr"
    for asked in ("de", "", None, 7, "x" * 10000):
        assert i18n.language_of(asked) == "en"
        assert i18n.text("error.text.control", asked) == "control characters are not allowed"

    monkeypatch.setitem(i18n.CATALOGUES, "en", dict(i18n.CATALOGUES["en"], **{"test.only_english": "Hello {who}"}))
    caplog.set_level(logging.WARNING, logger="gateway.i18n")
    for _ in range(3):
        assert i18n.text("test.only_english", "fr", who="Ada") == "Hello Ada"
        assert i18n.text("test.nowhere", "fr") == "test.nowhere"
    assert len([r for r in caplog.records if "test.only_english" in r.getMessage()]) == 1
    assert len([r for r in caplog.records if "test.nowhere" in r.getMessage()]) == 1
    # a template that does not fit its parameters is shown as it is, never an exception
    assert i18n.text("error.int.range", "en", value=1) == "{value} is outside {min}..{max}"
    assert i18n.text("test.only_english", "en", who="{0}{x}") == "Hello {0}{x}"     # a value is not a template


def test_the_logged_once_memory_is_bounded(monkeypatch):
    monkeypatch.setattr(i18n, "_warned", set())
    for n in range(5 * i18n._WARNED_MAX):
        assert i18n.text("test.missing.%d" % n, "fr") == "test.missing.%d" % n
    assert len(i18n._warned) == i18n._WARNED_MAX


@pytest.mark.parametrize("language", i18n.LANGUAGES)
def test_a_message_waits_for_its_language_and_nests(language):
    problem = i18n.Message("error.int.range", value=4095, min=1, max=4094)
    whole = i18n.Message("error.field", name="network.vlan.id", problem=problem)
    expected = {"en": "network.vlan.id: 4095 is outside 1..4094",
                "fr": "network.vlan.id : 4095 est hors de la plage 1..4094"}[language]
    assert whole.text(language) == expected
    assert str(whole) == "network.vlan.id: 4095 is outside 1..4094"


def test_every_language_has_the_same_catalogue_files_and_no_key_twice(tmp_path, monkeypatch):
    names = dict((language, [os.path.basename(p) for p in i18n.catalogue_files(language)]) for language in i18n.LANGUAGES)
    assert names["fr"] == names["en"] and "core.json" in names["en"]
    for language in i18n.LANGUAGES:
        (tmp_path / language).mkdir()
        (tmp_path / language / "a.json").write_text('{"x.one": "1"}')
        (tmp_path / language / "b.json").write_text('{"x.one": "2"}')
    monkeypatch.setattr(i18n, "LOCALE_DIR", str(tmp_path))
    with pytest.raises(ValueError, match="x.one"):
        i18n._load("en")
