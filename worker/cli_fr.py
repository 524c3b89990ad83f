"""The CLI's own words in French: click and typer write their usage errors and help through
`gettext` with no French catalogue, so the `parcours` command gives them these translations."""

from __future__ import annotations

import importlib
import re
from typing import Any

FRENCH = {
    "Usage:": "Utilisation :",
    "Usage: ": "Utilisation : ",
    "Options": "Options",
    "Arguments": "Arguments",
    "Commands": "Commandes",
    "Positional arguments": "Arguments",
    "Error": "Erreur",
    "Error: {message}": "Erreur : {message}",
    "Aborted.": "Interrompu.",
    "Aborted!": "Interrompu.",
    "Show this message and exit.": "Afficher cette aide et quitter.",
    "Show the version and exit.": "Afficher la version et quitter.",
    "Try '{command} {option}' for help.": "Voir « {command} {option} » pour l'aide.",
    "Try [blue]'{command_path} {help_option}'[/] for help.": "Voir [blue]« {command_path} {help_option} »[/] pour l'aide.",
    "Missing argument": "Argument manquant",
    "Missing option": "Option obligatoire manquante",
    "Missing parameter": "Paramètre manquant",
    "Missing {param_type}": "{param_type} manquant",
    "Missing parameter: {param_name}": "Paramètre manquant : {param_name}",
    "Missing command.": "Commande manquante.",
    "No such option {name!r}.": "Option inconnue : {name!r}.",
    "No such command {name!r}.": "Commande inconnue : {name!r}.",
    "Did you mean {possibility}?": "Vouliez-vous dire {possibility} ?",
    "(Did you mean one of: {possibilities}?)": "(Vouliez-vous dire : {possibilities} ?)",
    "Invalid value for {param_hint}: {message}": "Valeur invalide pour {param_hint} : {message}",
    "Invalid value: {message}": "Valeur invalide : {message}",
    "Option {name!r} does not take a value.": "L'option {name!r} ne prend pas de valeur.",
    "Option {name!r} requires an argument.": "L'option {name!r} attend une valeur.",
    "Option {name!r} requires {nargs} arguments.": "L'option {name!r} attend {nargs} valeurs.",
    "Got unexpected extra argument ({args})": "Argument en trop : ({args})",
    "Got unexpected extra arguments ({args})": "Arguments en trop : ({args})",
    "{value!r} is not a valid {number_type}.": "{value!r} n'est pas un {number_type} valide.",
    "{value} is not in the range {range}.": "{value} n'est pas dans l'intervalle {range}.",
    "{value!r} is not {choice}.": "{value!r} n'est pas {choice}.",
    "{value!r} is not one of {choices}.": "{value!r} n'est pas parmi {choices}.",
    "{name} {filename!r} does not exist.": "{name} {filename!r} n'existe pas.",
    "{name} {filename!r} is a directory.": "{name} {filename!r} est un dossier.",
    "{name} {filename!r} is not readable.": "{name} {filename!r} n'est pas lisible.",
    "Could not open file {filename!r}: {message}": "Impossible d'ouvrir le fichier {filename!r} : {message}",
    "Repeat for confirmation": "Répétez pour confirmer",
    "Error: The two entered values do not match.": "Erreur : les deux saisies diffèrent.",
    "Error: invalid input": "Erreur : saisie invalide",
    "[default: {}]": "[par défaut : {}]",
    "[env var: {}]": "[variable : {}]",
    "[required]": "[obligatoire]",
    "(deprecated) ": "(obsolète) ",
    "default: {default}": "par défaut : {default}",
    "required": "obligatoire",
    "integer": "entier",
    "float": "nombre",
    "file": "fichier",
    "directory": "dossier",
    "path": "chemin",
    "Path": "Chemin",
    "File": "Fichier",
    "Directory": "Dossier",
    "unknown error": "erreur inconnue",
}
_MODULES = (
    "click.core",
    "click.decorators",
    "click.exceptions",
    "click.formatting",
    "click.parser",
    "click.termui",
    "click.types",
    "click.utils",
    "typer.core",
    "typer.main",
    "typer.rich_utils",
)
_RICH_CONSTANTS = {
    "DEPRECATED_STRING": "(deprecated) ",
    "DEFAULT_STRING": "[default: {}]",
    "ENVVAR_STRING": "[env var: {}]",
    "REQUIRED_LONG_STRING": "[required]",
    "ARGUMENTS_PANEL_TITLE": "Arguments",
    "OPTIONS_PANEL_TITLE": "Options",
    "COMMANDS_PANEL_TITLE": "Commands",
    "ERRORS_PANEL_TITLE": "Error",
    "ABORTED_TEXT": "Aborted.",
    "RICH_HELP": "Try [blue]'{command_path} {help_option}'[/] for help.",
}


def french(message: str) -> str:
    return FRENCH.get(message, message)


def french_plural(singular: str, plural: str, count: int) -> str:
    return french(singular if count == 1 else plural)


# Typer's vendored click writes its usage errors as English f-strings: translated by pattern.
_PATTERNS = [
    (re.compile(r"^Missing option (.+)\.$", re.S), r"option obligatoire manquante : \1."),
    (re.compile(r"^Missing argument (.+)\.$", re.S), r"argument manquant : \1."),
    (re.compile(r"^Missing parameter: (.+)$", re.S), r"paramètre manquant : \1"),
    (re.compile(r"^Missing (.+)$", re.S), r"manquant : \1"),
    (re.compile(r"^Invalid value for (.+?): (.+)$", re.S), r"valeur invalide pour \1 : \2"),
    (re.compile(r"^Invalid value: (.+)$", re.S), r"valeur invalide : \1"),
    (
        re.compile(r"^No such option: (\S+)(?: \(Possible options: (.+)\))?$", re.S),
        r"option inconnue : \1 (options proches : \2)",
    ),
    (re.compile(r"^No such command:? (.+?)\.?$", re.S), r"commande inconnue : \1"),
    (re.compile(r"^Got unexpected extra argument(?:\(s\)|s)? \((.+)\)$", re.S), r"argument(s) en trop : \1"),
    (re.compile(r"^Option (.+?) requires an argument\.$", re.S), r"l'option \1 attend une valeur."),
    (re.compile(r"^Option (.+?) does not take a value\.$", re.S), r"l'option \1 ne prend pas de valeur."),
]
_WORDS = [
    ("Input should be a valid integer, unable to parse string as an integer", "un nombre entier est attendu"),
    ("Input should be a valid integer", "un nombre entier est attendu"),
    ("Input should be a valid number", "un nombre est attendu"),
    ("Input should be a valid boolean", "oui/non (true/false) est attendu"),
    ("Input should be greater than or equal to", "la valeur doit être au moins"),
    ("Input should be less than or equal to", "la valeur doit être au plus"),
    ("is not one of", "n'est pas parmi"),
    ("does not exist", "n'existe pas"),
]


def french_usage(message: str) -> str:
    for pattern, replacement in _PATTERNS:
        if pattern.match(message):
            message = pattern.sub(replacement, message).replace(" (options proches : )", "").rstrip()
            break
    for english, translated in _WORDS:
        message = message.replace(english, translated)
    return message


def _translated(format_message: Any) -> Any:
    def wrapper(self: Any) -> str:
        return french_usage(format_message(self))

    return wrapper


def install() -> None:
    """Give click's and typer's messages (usage errors, help titles) in French."""
    try:
        vendored: Any = importlib.import_module("typer._click.exceptions")
    except ImportError:
        vendored = None
    for exception in vars(vendored).values() if vendored else ():
        if isinstance(exception, type) and "format_message" in vars(exception):
            setattr(exception, "format_message", _translated(vars(exception)["format_message"]))  # noqa: B010
    for name in _MODULES:
        try:
            module: Any = importlib.import_module(name)
        except ImportError:
            continue
        if hasattr(module, "_"):
            module._ = french
        if hasattr(module, "ngettext"):
            module.ngettext = french_plural
        if name == "typer.rich_utils":
            for constant, english in _RICH_CONSTANTS.items():
                if hasattr(module, constant):
                    setattr(module, constant, french(english))
