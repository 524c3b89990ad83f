"""Planning the move of a running pathway to another version of its definition: pure functions
shared by the dry run (service, CLI, UI) and the workflow's validator, so both say the same thing.

A plan never drops work: every open item (task, wait, parallel group) lands on a step of the same
kind in the new version, by the same id or through the designer's map (old step -> new step), or
the pathway is refused with the French reasons why."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from definitions.schema import Definition, ParallelStep, TaskStep, WaitStep


class MigrationInputError(ValueError):
    """The request itself is wrong (before any pathway is looked at): a French message."""

    def __init__(self, message: str, kind: str = "invalid") -> None:
        super().__init__(message)
        self.message, self.kind = message, kind


@dataclass(frozen=True)
class Landing:
    """Where one open item lands: its new step id, title, and parallel group (branches only)."""

    step_id: str
    to_step: str
    kind: str
    track: str
    title: str
    group: str | None = None


@dataclass
class MigrationPlan:
    """For each open item (in the order given) its landing, or why the pathway is refused."""

    from_version: int
    to_version: int
    landings: list[Landing] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)
    results_map: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.refusals


def step_ids(definition: Definition) -> set[str]:
    """Every step a map may name: main flow, parallel branches and module steps."""
    ids = {s.id for s in definition.steps}
    ids.update(t.id for t in definition.all_tasks())
    return ids


def parent_group(definition: Definition, task_id: str) -> ParallelStep | None:
    for step in definition.steps:
        if isinstance(step, ParallelStep) and any(b.id == task_id for b in step.branches):
            return step
    return None


def _module_of(definition: Definition, task_id: str) -> str | None:
    for module in definition.modules:
        if any(t.id == task_id for t in module.steps):
            return module.id
    return None


def _main_step(definition: Definition, step_id: str) -> object | None:
    return next((s for s in definition.steps if s.id == step_id), None)


def check_request(old: Definition, new: Definition, step_map: dict[str, str]) -> None:
    """Errors of the request as a whole, raised before any pathway is looked at."""
    if new.id != old.id:
        raise MigrationInputError(
            f"La version cible est celle d'un autre parcours (« {new.id} », et non « {old.id} »)."
        )
    if (new.version or 0) == (old.version or 0):
        raise MigrationInputError(f"Le parcours est déjà sur la version {new.version} de « {old.id} ».")
    check_map(new, step_map, old_ids=step_ids(old), old_label=f"la version {old.version}")


def check_map(new: Definition, step_map: dict[str, str], *, old_ids: set[str], old_label: str) -> None:
    """A map names steps of the old version(s) and targets steps of the new one."""
    absent = sorted(k for k in step_map if k not in old_ids)
    if absent:
        raise MigrationInputError(
            f"Correspondance invalide : l'étape « {', '.join(absent)} » n'existe pas dans {old_label} de « {new.id} »."
        )
    new_ids = step_ids(new)
    missing = sorted({v for v in step_map.values() if v not in new_ids})
    if missing:
        raise MigrationInputError(
            f"Correspondance invalide : l'étape cible « {', '.join(missing)} » n'existe pas dans la version "
            f"{new.version} de « {new.id} »."
        )


def plan_migration(
    old: Definition,
    new: Definition,
    step_map: dict[str, str],
    open_items: Sequence[tuple[str, str, str]],
) -> MigrationPlan:
    """Where each open item `(step_id, kind, track)` lands in `new`, or the reasons it cannot.
    Raises MigrationInputError when the request itself is wrong."""
    check_request(old, new, step_map)
    plan = MigrationPlan(from_version=old.version or 0, to_version=new.version or 0)
    version = f"la version {new.version}"
    kinds = {"task": "tâche ouverte", "wait": "attente en cours", "group": "accompagnement conjoint en cours"}
    dropped = {
        "task": "une tâche ouverte",
        "wait": "une attente en cours",
        "group": "un accompagnement conjoint en cours",
    }
    groups: dict[str, str] = {}  # old parallel id -> new parallel id (open groups)
    for step_id, kind, _track in open_items:
        if kind == "group":
            target = step_map.get(step_id, step_id)
            if isinstance(_main_step(new, target), ParallelStep):
                groups[step_id] = target
    used: dict[str, str] = {}
    for step_id, kind, track in open_items:
        if kind not in kinds:  # decisions and ends close at once: never open
            continue
        target = step_map.get(step_id, step_id)
        what = f"l'étape « {step_id} » ({kinds[kind]})"
        if target not in step_ids(new):
            plan.refusals.append(
                f"{what[0].upper()}{what[1:]} n'existe plus dans {version} : la migration abandonnerait "
                f"{dropped[kind]}. Indiquez où la déplacer (correspondance {step_id}=…)."
            )
            continue
        landing, reason = _land(old, new, step_id, target, kind, track, groups)
        if landing is None:
            plan.refusals.append(f"{what[0].upper()}{what[1:]} ne peut pas aller sur « {target} » : {reason}.")
            continue
        if target in used and kind != "group":
            plan.refusals.append(
                f"Les étapes « {used[target]} » et « {step_id} » arriveraient toutes deux sur « {target} »."
            )
            continue
        used[target] = step_id
        plan.landings.append(landing)
    # Branches added to an open group are not opened for pathways already inside it.
    for new_group in groups.values():
        spec = _main_step(new, new_group)
        assert isinstance(spec, ParallelStep)
        landed = {lg.to_step for lg in plan.landings if lg.group == new_group}
        added = [b.id for b in spec.branches if b.id not in landed and b.id not in step_ids(old)]
        if added:
            plan.notes.append(
                f"Branche(s) nouvelle(s) « {', '.join(added)} » de « {new_group} » : non ouvertes pour ce parcours."
            )
    for key in step_ids(old):
        target = step_map.get(key, key)
        if target != key:
            plan.results_map[key] = target
    return plan


def _land(
    old: Definition, new: Definition, step_id: str, target: str, kind: str, track: str, groups: dict[str, str]
) -> tuple[Landing | None, str]:
    """The landing of one open item on `target`, or why the kinds do not match."""
    if kind == "wait":
        spec = _main_step(new, target)
        if not isinstance(spec, WaitStep):
            return None, "une attente ne peut arriver que sur une étape d'attente"
        return Landing(step_id, target, kind, track, spec.title), ""
    if kind == "group":
        spec = _main_step(new, target)
        if not isinstance(spec, ParallelStep):
            return None, "un accompagnement conjoint ne peut arriver que sur un accompagnement conjoint"
        return Landing(step_id, target, kind, track, spec.title, None), ""
    # A task: same place in the new version (main flow, branch of the group it lands with, module).
    try:
        task = new.task(target)
    except KeyError:
        return None, "une tâche ne peut arriver que sur une tâche"
    old_group = parent_group(old, step_id)
    new_group = parent_group(new, target)
    if track.startswith("module:"):
        module_id = track.removeprefix("module:")
        if new.module(module_id) is None:
            return None, f"le module « {module_id} » n'existe plus dans la version {new.version}"
        if _module_of(new, target) != module_id:
            return None, f"une étape du module « {module_id} » doit arriver sur une étape de ce même module"
        return Landing(step_id, target, kind, track, task.title), ""
    if old_group is not None:
        expected = groups.get(old_group.id)
        if expected is None:
            return None, f"l'accompagnement conjoint « {old_group.id} » n'a pas de place dans la nouvelle version"
        if new_group is None or new_group.id != expected:
            return None, f"une branche doit arriver sur une branche de « {expected} »"
        return Landing(step_id, target, kind, track, task.title, expected), ""
    if (
        new_group is not None
        or _module_of(new, target) is not None
        or not isinstance(_main_step(new, target), TaskStep)
    ):
        return None, "une tâche du parcours doit arriver sur une tâche du parcours (ni branche, ni module)"
    return Landing(step_id, target, kind, track, task.title), ""


def module_position(new: Definition, module_id: str, step_id: str) -> int:
    """The module's next step index once its open task is on `step_id`."""
    module = new.module(module_id)
    assert module is not None
    return next(i for i, t in enumerate(module.steps) if t.id == step_id) + 1
