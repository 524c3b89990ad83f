"""Small definitions with short ISO durations, so timers fire within seconds in tests."""

FLOW = """
id: test_flow
title: Parcours de test
status: active
basins: [all]
start: accueil
escalation:
  - {to: gto, after: PT2S}
  - {to: spie_direction, after: PT2S}
steps:
  - kind: task
    id: accueil
    title: Accueil
    role: referent
    deadline: PT1H
    form:
      - id: besoin
        label: Besoin
        type: choice
        required: true
        choices: [{value: emploi, label: Emploi}, {value: social, label: Social}]
      - {id: commentaire, label: Commentaire, type: text}
    outcomes: [{id: fait, label: Accueil réalisé, next: orienter}]
  - kind: decision
    id: orienter
    title: Orienter
    based_on: accueil.besoin
    cases: [{when: emploi, next: conjoint}]
    default: fin_social
  - kind: parallel
    id: conjoint
    title: Accompagnement conjoint
    completion: {completion}
    branches:
      - {kind: task, id: appui_referent, title: Appui du référent, role: referent, deadline: PT1H, outcomes: [{id: fait, label: Fait}]}
      - {kind: task, id: appui_ft, title: Appui France Travail, role: "partner:france_travail", deadline: PT1H, outcomes: [{id: fait, label: Fait}]}
    next: suivi
  - kind: task
    id: suivi
    title: Suivi facultatif
    role: referent
    optional: true
    skip_to: attente
    outcomes: [{id: fait, label: Fait, next: attente}]
  - {kind: wait, id: attente, title: Attente, duration: PT1S, next: fin_emploi}
  - {kind: end, id: fin_emploi, title: Sortie emploi, exit_reason: emploi_durable}
  - {kind: end, id: fin_social, title: Sortie sociale, exit_reason: reorientation}
modules:
  - id: mobilite
    title: Module mobilité
    steps:
      - {kind: task, id: mobilite_diag, title: Diagnostic mobilité, role: "partner:association", outcomes: [{id: fait, label: Fait}]}
      - {kind: task, id: mobilite_solution, title: Solution mobilité, role: referent, outcomes: [{id: fait, label: Fait}]}
"""


def flow(completion: str = "all") -> str:
    return FLOW.replace("{completion}", completion)


def timed(
    deadline: str = "PT2S",
    reminder_before: str = "PT1S",
    reminder_after: str = "PT1S",
    level1: str = "PT1S",
    level2: str = "PT2S",
    definition_id: str = "test_timed",
) -> str:
    """One task with a short deadline, a reminder before and after it, two escalation levels."""
    return f"""
id: {definition_id}
title: Parcours minuté
status: active
basins: [all]
start: tache
escalation:
  - {{to: gto, after: {level1}}}
  - {{to: spie_direction, after: {level2}}}
steps:
  - kind: task
    id: tache
    title: Tâche minutée
    role: partner:france_travail
    deadline: {deadline}
    reminders: [{{before: {reminder_before}}}, {{after: {reminder_after}}}]
    outcomes: [{{id: fait, label: Fait, next: fin}}]
  - {{kind: end, id: fin, title: Fin, exit_reason: emploi_durable}}
modules:
  - id: renfort
    title: Renfort
    steps:
      - {{kind: task, id: renfort_tache, title: Renfort, role: referent, outcomes: [{{id: fait, label: Fait}}]}}
"""


def fast(definition_id: str = "test_fast", level2: str = "PT10S") -> str:
    """`timed` in half-seconds: reminder at 0.5 s, deadline at 1 s, escalation level 1 at 1.5 s."""
    return timed(
        deadline="PT1S",
        reminder_before="PT0.5S",
        reminder_after="PT0.5S",
        level1="PT0.5S",
        level2=level2,
        definition_id=definition_id,
    )


LOOP = """
id: test_loop
title: Parcours en boucle
status: active
basins: [all]
start: boucle
steps:
  - kind: task
    id: boucle
    title: Point d'étape
    role: referent
    outcomes:
      - {id: encore, label: Encore un point, next: boucle}
      - {id: fini, label: Terminé, next: fin}
  - {kind: end, id: fin, title: Fin, exit_reason: formation}
"""
