"""leadflow: real-time lead scoring, qualification, conversion and routing on Kafka."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("leadflow")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

__all__ = ["__version__"]
