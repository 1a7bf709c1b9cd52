"""The exceptions of the client SDK. Standard library only: `import drover` in a job never
needs grpcio.

    DroverError          every error the SDK raises
      ParameterError     a bad argument, found before anything was sent or uploaded; also
                         a ValueError. The message names the parameter.
      ServerError        droverd refused or failed a call; `code` is the gRPC status name
                         ("INVALID_ARGUMENT", "NOT_FOUND", ...) and the message droverd's own,
                         which names the field
      RunFailedError     a run ended FAILED or CANCELED while waiting for it; the message is
                         droverd's, naming the first failing rank
"""


class DroverError(Exception):
    """Base class of every error of the `drover` SDK."""


class ParameterError(DroverError, ValueError):
    """A bad parameter, refused before anything was uploaded or submitted."""


class ServerError(DroverError):
    """droverd answered a call with an error.

    `code`: the gRPC status code's name, for example "INVALID_ARGUMENT"; `message`: droverd's
    message (it names the offending field and says what to do).
    """

    def __init__(self, code: str, message: str):
        super().__init__(f"{message} ({code})")
        self.code = code
        self.message = message


class RunFailedError(DroverError):
    """A run ended FAILED or CANCELED. `run_id`, `state` ("Failed", "Canceled"), `cause`
    (droverd's cause, for example "PROCESS_FAILED") and `message` (droverd's, naming the
    first failing rank)."""

    def __init__(self, run_id: str, state: str, cause: str, message: str):
        super().__init__(f"run {run_id} {state.lower()}: {message or cause}")
        self.run_id = run_id
        self.state = state
        self.cause = cause
        self.message = message
