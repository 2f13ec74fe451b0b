"""The data models of generic Modbus devices, kept in the state directory (issue 18, WEBVIEW-L §8.2.1).

A model (core/datamodel.py: name + rows) is reusable for many devices; a
device holds a copy of its model (daemon/state/topology.py ``Device.model``)
so the topology is whole on its own, and saving a model hands the new copy to
the devices that use it (the door replaces them in one topology change). A
model a device uses cannot be deleted. At most ``datamodel.MAX_MODELS``
models of ``datamodel.MAX_ROWS`` rows each.

``datamodels.json`` is written atomically with a good copy, off the loop
(daemon/atomicfile.py), like the usages; a damaged file is moved aside and
the copy used. A refusal is ``ModelRefused`` with one detail per problem (a
catalogue key, EN/FR in daemon/locale/*/generic.json) and changes nothing.
"""

import asyncio
import os

from core import datamodel
from daemon.atomicfile import AtomicJSONStorage
from daemon.blocking import run_blocking

FILE_NAME = "datamodels.json"


class ModelRefused(ValueError):
    """A model change refused: ``details`` say why, per field (and per CSV line); nothing changed."""

    def __init__(self, message, details):
        ValueError.__init__(self, message)
        self.details = details


def _shape(doc):
    if not isinstance(doc.get("models", []), list):
        raise ValueError("the models are not a list")


def summary(details):
    """A short English line of details (logs, the refusal's message)."""
    parts = []
    for d in details[:8]:
        where = "line %d: " % d["line"] if "line" in d else "row %d: " % d["row"] if "row" in d else ""
        parts.append("%s%s %s" % (where, d["field"] or "", d["key"].rsplit(".", 1)[-1]))
    return "; ".join(parts) + ("; ..." if len(details) > 8 else "")


class DataModels:
    """The models by name, persisted; ``save``/``delete`` one at a time."""

    def __init__(self, state_dir):
        self.path = os.path.join(state_dir, FILE_NAME)
        self._lock = asyncio.Lock()
        storage = AtomicJSONStorage(self.path, check=_shape)
        data = storage.read() or {}
        self.load_problem = storage.problem
        self.models = {}
        for entry in data.get("models", []):
            model, problems = datamodel.check_model(entry)
            if problems:
                self.load_problem = (self.load_problem or "") + " model skipped: %s" % summary(problems)
                continue
            self.models[model["name"]] = model

    def names(self):
        return sorted(self.models, key=str.lower)

    def get(self, name):
        return self.models.get(name)

    async def _write(self, models):
        doc = {"models": [models[n] for n in sorted(models, key=str.lower)]}
        await run_blocking(AtomicJSONStorage(self.path).write, doc)
        self.models = models

    async def save(self, data, replacing=None):
        """Check and keep a model (``replacing``: the name it had, for a rename); the clean model."""
        model, problems = datamodel.check_model(data)
        if problems:
            raise ModelRefused("model refused: %s" % summary(problems), problems)
        async with self._lock:
            models = dict(self.models)
            if replacing is not None and replacing not in models:
                raise ModelRefused("no model %r" % str(replacing)[:40],
                                   [datamodel.detail("model", "generic.error.no_model", name=str(replacing)[:40])])
            if replacing is not None:
                del models[replacing]
            if any(n.lower() == model["name"].lower() for n in models):
                raise ModelRefused("a model is already named %r" % model["name"],
                                   [datamodel.detail("model", "generic.error.model_taken", name=model["name"])])
            if len(models) >= datamodel.MAX_MODELS:
                raise ModelRefused("at most %d models" % datamodel.MAX_MODELS,
                                   [datamodel.detail("model", "generic.error.too_many_models",
                                                     max=datamodel.MAX_MODELS)])
            models[model["name"]] = model
            await self._write(models)
        return model

    async def delete(self, name, users):
        """Delete a model; ``users``: the names of the devices using it (refused when any)."""
        async with self._lock:
            if name not in self.models:
                raise ModelRefused("no model %r" % str(name)[:40],
                                   [datamodel.detail("model", "generic.error.no_model", name=str(name)[:40])])
            if users:
                raise ModelRefused("the model is used by %s" % ", ".join(users),
                                   [datamodel.detail("model", "generic.error.model_in_use", devices=", ".join(users))])
            models = dict(self.models)
            del models[name]
            await self._write(models)
