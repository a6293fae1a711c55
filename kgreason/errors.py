"""Exceptions that the command-line tools report as one line, without a traceback."""


class KgreasonError(Exception):
    """A failure caused by input or set-up that the user can fix; the message says how."""


class MissingPackageError(KgreasonError, ImportError):
    """An optional package (a model package, for example) is not installed."""

    def __init__(self, package: str, purpose: str, pip_args: str | None = None):
        command = f"pip install {pip_args or package}"
        super().__init__(f"package {package!r} is not installed but is needed for {purpose}; install it with: {command}")
        self.package = package
