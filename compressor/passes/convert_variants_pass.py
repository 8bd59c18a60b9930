"""Convert every variant (pruned, distilled) with the same converters as the source model.

Each variant runs through the profile's converters in a view of the build
whose source is the variant's module, in its own work folder; its candidates
join the build's list labelled with the variant, its own parameter and MAC
counts, and how it was made, so validation, measurement and selection treat
them like any other candidate.
"""

from __future__ import annotations

import dataclasses

from compressor.passes import measure_source_pass
from compressor.state import BuildState


def run(state: BuildState) -> None:
    from compressor.pipeline import converters  # the registry lives with the pipeline, which imports this pass

    for variant in state.variants:
        view = dataclasses.replace(
            state,
            source=dataclasses.replace(state.source, _torch=variant.module, params=variant.params),
            workdir=state.workdir / "variants" / variant.label,
            candidates=[],
            selected={},
            variants=[],
            per_tensor_weights=variant.clusters is not None,
        )
        view.workdir.mkdir(parents=True, exist_ok=True)
        measure_source_pass.run(view)
        for fmt in state.profile.accepts.formats:
            converters.get(fmt.value)(view)
        for candidate in view.candidates:
            candidate.variant, candidate.technique = variant.label, variant.technique
            candidate.params, candidate.macs = variant.params, view.macs
        state.candidates.extend(view.candidates)
