"""EdgeForge compressor: load, convert, quantize, validate, profile and select edge artifacts."""

from compressor.api import Build, BuildResult, compress, load_source, run_build, write_bundle
from compressor.errors import EdgeForgeError, GateFailedError, InvalidInputError, UnknownNameError
from compressor.options import CompressOptions
from compressor.profiles import Format, Precision, Profile, all_profiles, get_profile

__all__ = [
    "Build",
    "BuildResult",
    "CompressOptions",
    "EdgeForgeError",
    "Format",
    "GateFailedError",
    "InvalidInputError",
    "Precision",
    "Profile",
    "UnknownNameError",
    "all_profiles",
    "compress",
    "get_profile",
    "load_source",
    "run_build",
    "write_bundle",
]
