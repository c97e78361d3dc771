"""Errors the CLI turns into one clear line and an exit code."""

from __future__ import annotations


class OrchestratorError(Exception):
    """Base class: the message is one line that names what was wrong and what to do."""

    exit_code = 2


class UserInputError(OrchestratorError):
    """Bad input from the user: a malformed task folder, an unknown name, a bad option."""


class TaskFormatError(UserInputError):
    def __init__(self, folder: object, problem: str) -> None:
        super().__init__(f"{folder}: {problem}")
        self.folder = folder
        self.problem = problem


class ConfigurationError(UserInputError):
    """A missing key, an unreachable engine, a missing model file."""
