"""What every converter pass shares: derive one candidate per accepted precision from an fp32 base."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from compressor.errors import EdgeForgeError
from compressor.native_output import captured
from compressor.profiles import Format, Precision
from compressor.progress import Stage
from compressor.state import BuildState, Candidate

Quantize = Callable[[Path, Path, Precision, BuildState], None]


def derive_candidates(state: BuildState, fmt: Format, base: Path, quantize: Quantize, stage: Stage) -> None:
    """Append a candidate per precision the profile accepts for ``fmt``, each written by ``quantize(base, out, ...)``.

    A precision whose quantizer fails becomes a failed candidate with the reason; the others go on.
    """
    for precision in state.precisions_for(fmt):
        candidate = Candidate(fmt, precision, state.workdir / "candidates" / f"{precision.value}.{fmt.value}")
        candidate.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with captured(state.workdir / "converter.log"):
                quantize(base, candidate.path, precision, state)
        except EdgeForgeError:
            raise
        except Exception as exc:  # noqa: BLE001 - one failed precision must not sink the others
            candidate.error = f"quantization failed: {type(exc).__name__}: {str(exc)[:300]}"
        state.candidates.append(candidate)
        stage.advance(precision.value)
