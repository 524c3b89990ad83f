"""The language of pathway definitions (the SPEC): a pydantic schema for YAML written by
process designers. Step kinds form a discriminated union on `kind`."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from definitions.durations import Delay

IDENT = r"^[a-z][a-z0-9_]*$"
Ident = Annotated[str, Field(pattern=IDENT, description="lower_snake_case identifier")]

ORGANISATION_TYPES = (
    "departement",
    "france_travail",
    "caf",
    "msa",
    "mission_locale",
    "cap_emploi",
    "spip",
    "pjj",
    "employer_federation",
    "spie",
    "training",
    "siae",
    "association",
    "epci",
    "employer",
)

SOFT_SKILLS: dict[str, str] = {
    "autonomie": "Autonomie",
    "capacite_a_federer": "Capacité à fédérer",
    "capacite_d_adaptation": "Capacité d'adaptation",
    "capacite_de_decision": "Capacité de décision",
    "curiosite": "Curiosité",
    "force_de_proposition": "Force de proposition",
    "gestion_du_stress": "Gestion du stress",
    "perseverance": "Persévérance",
    "prise_de_recul": "Prise de recul",
    "reactivite": "Réactivité",
    "rigueur": "Rigueur",
    "sens_de_l_organisation": "Sens de l'organisation",
    "sens_de_la_communication": "Sens de la communication",
    "travail_en_equipe": "Travail en équipe",
}
"""France Travail's savoir-être professionnels referential, shipped as data."""

SOFT_SKILL_SCALE = {1: "À développer", 2: "En cours d'acquisition", 3: "Acquis", 4: "Maîtrisé"}

EXIT_REASONS: dict[str, str] = {
    "emploi_durable": "Emploi durable",
    "emploi_temporaire": "Emploi temporaire",
    "formation": "Formation qualifiante",
    "creation_activite": "Création d'activité",
    "reorientation": "Réorientation",
    "abandon": "Abandon",
    "demenagement": "Déménagement",
    "fin_de_droits": "Fin de droits",
    "autre": "Autre",
}


TRIAL_SUFFIX = "_essai"
"""Suffix of the trial copies designers start with short delays: never offered to caseworkers."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- Who is responsible -------------------------------------------------------------------

_ROLE = re.compile(r"^(referent|partner:(?P<type>[a-z_]+)|organisation:(?P<org>[a-z0-9_\-]+))$")


def check_role(value: str) -> str:
    """A role is resolved per pathway: `referent` (the referent organisation),
    `partner:<type>` (the organisation of that type serving the basin) or
    `organisation:<id>` (a fixed organisation)."""
    match = _ROLE.match(value)
    if not match:
        raise ValueError(f"rôle inconnu {value!r} : utilisez referent, partner:<type> ou organisation:<id>")
    if match["type"] and match["type"] not in ORGANISATION_TYPES:
        raise ValueError(
            f"type de partenaire inconnu {match['type']!r} ; types connus : {', '.join(ORGANISATION_TYPES)}"
        )
    return value


Role = Annotated[str, Field(description="referent | partner:<type> | organisation:<id>")]


# --- Forms --------------------------------------------------------------------------------


class Choice(Strict):
    value: Ident
    label: str


class FormField(Strict):
    """One field of the form a task asks the responsible party to fill."""

    id: Ident
    label: str
    type: Literal["text", "number", "date", "choice", "yes_no", "soft_skills"]
    required: bool = False
    help: str | None = None
    choices: list[Choice] | None = None
    minimum: float | None = None
    maximum: float | None = None
    skills: list[str] | None = Field(None, description="soft_skills only: the items assessed (default: all 14)")

    @model_validator(mode="after")
    def _consistent(self) -> FormField:
        if self.type == "choice" and not self.choices:
            raise ValueError("un champ 'choice' demande une liste 'choices' non vide")
        if self.type != "choice" and self.choices:
            raise ValueError("'choices' n'est permis que pour les champs de type 'choice'")
        if self.skills is not None:
            if self.type != "soft_skills":
                raise ValueError("'skills' n'est permis que pour les champs de type 'soft_skills'")
            unknown = [s for s in self.skills if s not in SOFT_SKILLS]
            if unknown:
                raise ValueError(
                    f"savoir-être inconnu(s) {', '.join(unknown)} ; identifiants connus : {', '.join(SOFT_SKILLS)}"
                )
        return self

    @property
    def assessed_skills(self) -> list[str]:
        return list(self.skills) if self.skills else list(SOFT_SKILLS)


# --- Deadlines, reminders, escalation -----------------------------------------------------


class Reminder(Strict):
    """A reminder (relance) before or after the deadline."""

    before: Delay | None = None
    after: Delay | None = None

    @model_validator(mode="after")
    def _one_side(self) -> Reminder:
        if (self.before is None) == (self.after is None):
            raise ValueError("une relance donne soit 'before' soit 'after' (par rapport à l'échéance), pas les deux")
        return self


class EscalationLevel(Strict):
    """Level 1 goes to the basin's GTO, level 2 to the département's SPIE direction. `after` counts
    from the deadline for the first level, from the previous level for the next ones."""

    to: Literal["gto", "spie_direction"]
    after: Delay


class Outcome(Strict):
    id: Ident
    label: str
    next: Ident | None = Field(None, description="the step that follows this outcome")


class TaskStep(Strict):
    """A human task (tâche) given to the responsible organisation."""

    kind: Literal["task"]
    id: Ident
    title: str
    instructions: str | None = None
    role: Role
    form: list[FormField] = []
    outcomes: list[Outcome] = Field(min_length=1)
    deadline: Delay | None = None
    reminders: list[Reminder] = []
    escalation: list[EscalationLevel] | None = Field(
        None, description="overrides the definition's default escalation chain; [] for none"
    )
    optional: bool = False
    skip_to: Ident | None = Field(None, description="where a skipped optional step leads")

    _role = field_validator("role")(classmethod(lambda cls, v: check_role(v)))

    def outcome(self, outcome_id: str) -> Outcome | None:
        return next((o for o in self.outcomes if o.id == outcome_id), None)

    def field(self, field_id: str) -> FormField | None:
        return next((f for f in self.form if f.id == field_id), None)


IMMERSION_OUTCOMES = {
    "embauche": "Intention d'embauche de la structure d'accueil",
    "sans_embauche": "Immersion terminée, sans intention d'embauche",
    "annulee": "Immersion déclinée, annulée ou interrompue",
}


class ImmersionStep(TaskStep):
    """An immersion in a company (PMSMP). At run time it is a task of the prescriber (its role):
    the immersion is proposed from the pathway page to a host of the directory, accepted and its
    convention completed by the host, signed by every party, and the step ends with the tutor's
    bilan: `next_if_hiring` when the host intends to hire, `next` otherwise (or when the immersion
    is declined or cancelled). Its outcomes are these three and no others."""

    kind: Literal["immersion"]  # type: ignore[assignment]
    next: Ident = Field(description="after an immersion without hiring, declined or cancelled")
    next_if_hiring: Ident = Field(description="after an immersion whose host intends to hire")
    outcomes: list[Outcome] = []

    @model_validator(mode="before")
    @classmethod
    def _fixed_outcomes(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        if data.get("outcomes") and {
            o.get("id") if isinstance(o, dict) else getattr(o, "id", None) for o in data["outcomes"]
        } != set(IMMERSION_OUTCOMES):
            raise ValueError("les issues d'une étape immersion sont fixées : donnez seulement next et next_if_hiring")
        if data.get("form"):
            raise ValueError(
                "une étape immersion n'a pas de formulaire : la convention et le bilan du tuteur en tiennent lieu"
            )
        outcomes = [
            {"id": key, "label": label, "next": data.get("next_if_hiring") if key == "embauche" else data.get("next")}
            for key, label in IMMERSION_OUTCOMES.items()
        ]
        return {**data, "outcomes": outcomes}


class ParallelStep(Strict):
    """Joint accompaniment (accompagnement conjoint): several partners work at once. With
    `completion: all` the group ends when every branch is done, with `any` at the first one."""

    kind: Literal["parallel"]
    id: Ident
    title: str
    completion: Literal["all", "any"] = "all"
    branches: list[TaskStep] = Field(min_length=2)
    next: Ident


class DecisionCase(Strict):
    when: str | bool
    next: Ident


class DecisionStep(Strict):
    """An automatic branch on the outcome of an earlier step (`based_on: step`) or on a choice / yes-no
    field of its form (`based_on: step.field`)."""

    kind: Literal["decision"]
    id: Ident
    title: str
    based_on: str = Field(pattern=r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)?$")
    cases: list[DecisionCase] = Field(min_length=1)
    default: Ident | None = None


class WaitStep(Strict):
    """Wait for a while (e.g. the follow-up period after a placement)."""

    kind: Literal["wait"]
    id: Ident
    title: str
    duration: Delay
    next: Ident


class EndStep(Strict):
    """The exit (sortie) of the pathway, with its reason."""

    kind: Literal["end"]
    id: Ident
    title: str
    exit_reason: str = "autre"

    @field_validator("exit_reason")
    @classmethod
    def _known_reason(cls, value: str) -> str:
        if value not in EXIT_REASONS:
            raise ValueError(f"motif de sortie inconnu {value!r} ; motifs connus : {', '.join(EXIT_REASONS)}")
        return value


Step = Annotated[
    TaskStep | ImmersionStep | ParallelStep | DecisionStep | WaitStep | EndStep, Field(discriminator="kind")
]


class Module(Strict):
    """An optional module (mobility, housing, training, immersion…) a referent may add to one
    person's pathway at run time: its tasks run one after the other beside the main flow."""

    id: Ident
    title: str
    steps: list[TaskStep] = Field(min_length=1)


class Definition(Strict):
    """A pathway definition: the spec every pathway of this kind is run from."""

    id: Ident
    version: int | None = Field(None, ge=1, description="set by publishing")
    title: str
    description: str | None = None
    status: Literal["experimental", "active", "retired"] = "experimental"
    reference: Ident | None = Field(
        None, description="experimental pathways: the definition they are evaluated against (issue 12)"
    )
    publics: list[Literal["brsa", "deld", "neet", "boe", "tous"]] = []
    basins: list[Ident] = Field(min_length=1, description="basin ids, or ['all']")
    start: Ident
    escalation: list[EscalationLevel] = Field(
        default_factory=list, description="default escalation chain for every task"
    )
    steps: list[Step] = Field(min_length=1)
    modules: list[Module] = []

    def step(self, step_id: str) -> TaskStep | ParallelStep | DecisionStep | WaitStep | EndStep:
        for step in self.steps:
            if step.id == step_id:
                return step
        raise KeyError(step_id)

    def task(self, step_id: str) -> TaskStep:
        """Any task by id: main flow, parallel branch or module step."""
        for task in self.all_tasks():
            if task.id == step_id:
                return task
        raise KeyError(step_id)

    def all_tasks(self) -> list[TaskStep]:
        tasks: list[TaskStep] = []
        for step in self.steps:
            if isinstance(step, TaskStep):
                tasks.append(step)
            elif isinstance(step, ParallelStep):
                tasks.extend(step.branches)
        for module in self.modules:
            tasks.extend(module.steps)
        return tasks

    def module(self, module_id: str) -> Module | None:
        return next((m for m in self.modules if m.id == module_id), None)

    def escalation_for(self, task: TaskStep) -> list[EscalationLevel]:
        return list(task.escalation) if task.escalation is not None else list(self.escalation)

    def runs_in(self, basin: str) -> bool:
        return "all" in self.basins or basin in self.basins
