"""Search spaces: dimensions, decoding, validity, exact counts of valid configurations, user files."""

from __future__ import annotations

import itertools

import pytest
from optuna.distributions import CategoricalDistribution
from transformers import BertConfig

from autopeft.search_spaces import Plan, SpaceError, builtin_spaces, load_space, structure_of
from tests.models import TINY_CONFIGS

BERT_BASE = structure_of(BertConfig())


def test_builtin_spaces_are_registered():
    assert {"autopeft", "lora", "lora-variants", "mixed"} <= set(builtin_spaces())


def test_autopeft_space_has_15_dimensions_on_a_12_layer_model_with_paper_sizes():
    space = load_space("autopeft", BERT_BASE)
    dims = space.distributions()
    assert len(dims) == 15
    assert dims["serial.size"].choices == (0, 1, 3, 6, 12, 24, 48, 96, 192, 384, 768)
    # 11^3 size combinations x 2^12 masks, minus every-layer-off and every-module-off points.
    assert space.num_valid_configurations() == 11**3 * 2**12 - 11**3 - 2**12 + 1


def _all_points(space):
    dims = space.distributions()
    names = list(dims)
    choices = [d.choices if isinstance(d, CategoricalDistribution) else (0, 1) for d in dims.values()]
    for values in itertools.product(*choices):
        yield dict(zip(names, values, strict=True))


SMALL_SPACES = {
    "shared": "name: s\nmodules:\n  - {family: serial, sizes: [0, 4], mask: shared}\n"
              "  - {family: prefix, sizes: [0, 2, 3], mask: shared}\n",
    "own+per-layer": "name: s\nmodules:\n  - {family: lora, sizes: [0, 2], per_layer: true, targets: [qv, attention]}\n",
    "lora+ia3": "name: s\nmodules:\n  - {family: lora, sizes: [0, 2], mask: own}\n  - {family: ia3, sizes: [0, 1], mask: own}\n"
                "  - {family: parallel, sizes: [0, 8], mask: shared}\n",
    "choice-shared-mask": "name: s\nmodules:\n  - {family: [lora, ia3], name: la, sizes: [0, 1], mask: shared}\n"
                          "  - {family: serial, sizes: [0, 4], mask: shared}\n  - {family: prefix, sizes: [0, 2], mask: own}\n",
    "choice-per-layer": "name: s\nmodules:\n  - {family: [lora, loha, lokr], name: lr, sizes: [0, 2], per_layer: true,\n"
                        "     targets: [qv, all-linear], options: {use_dora: [false, true]}}\n",
}


@pytest.mark.parametrize("name", sorted(SMALL_SPACES))
def test_valid_configuration_count_matches_brute_force(tmp_path, name):
    path = tmp_path / "space.yaml"
    path.write_text(SMALL_SPACES[name])
    space = load_space(str(path), structure_of(TINY_CONFIGS["bert"]()))
    points = list(_all_points(space))
    assert len(points) == space.num_configurations()
    assert space.num_valid_configurations() == sum(space.is_valid(p) for p in points)


@pytest.mark.parametrize("space_name", builtin_spaces())
def test_decode_gives_plans_that_round_trip_and_invalid_points_are_flagged(space_name):
    space = load_space(space_name, structure_of(TINY_CONFIGS["bert"]()))
    all_off = {n: (0 if not isinstance(d, CategoricalDistribution) else d.choices[0]) for n, d in space.distributions().items()}
    assert not space.is_valid(all_off)
    assert space.decode(all_off).is_empty
    (small_plan, small), (large_plan, large) = space.param_range()
    assert 0 < small.params < large.params
    for plan in (small_plan, large_plan):
        assert Plan.from_text(plan.to_yaml()) == plan
        assert Plan.from_text(plan.to_json()) == plan


def test_lora_space_decodes_per_layer_ranks_targets_and_alpha():
    space = load_space("lora", structure_of(TINY_CONFIGS["bert"]()))
    params = {"lora.size.0": 0, "lora.size.1": 8, "lora.size.2": 8, "lora.size.3": 16,
              "lora.targets": "attention", "lora.alpha": 32}
    plan = space.decode(params)
    (module,) = plan.active
    assert (module.sizes, module.targets, module.alpha) == ((0, 8, 8, 16), "attention", 32.0)
    assert plan.summary() == "lora r8/16@L1-3 attention a32"


def test_mixed_space_never_counts_lora_with_ia3_as_valid():
    space = load_space("mixed", structure_of(TINY_CONFIGS["bert"]()))
    params = {n: 0 for n in space.distributions()}
    params.update({"lora.size": 4, "lora.mask.0": 1, "ia3.size": 1, "ia3.mask.1": 1})
    assert not space.is_valid(params)


@pytest.mark.parametrize(
    "text, message",
    [
        ("name: s\nmodules:\n  - {family: dora, sizes: [0, 4], mask: own}\n", "modules.0.family"),
        ("name: s\nmodules:\n  - {family: serial, sizes: [2, 4], mask: own}\n", "including 0"),
        ("name: s\nmodules:\n  - {family: serial, sizes: [0, 4]}\n", "mask: shared|own"),
        ("name: s\nmodules:\n  - {family: serial, sizes: [0, 4], mask: own, targets: [qv]}\n", "targets"),
        ("name: s\nmodules:\n  - {family: lora, sizes: [0, 4], mask: own, targets: [all-linear]}\n"
         "  - {family: serial, sizes: [0, 4], mask: own}\n", "LoRA targets only qv"),
        ("name: s\nmodules: [\n", "not valid YAML"),
        ("name: s\nmodules:\n  - {family: [lora, loha], sizes: [0, 4], per_layer: true}\n", "needs a name"),
        ("name: s\nmodules:\n  - {family: [lora, loha], name: a.b, sizes: [0, 4], per_layer: true}\n", "modules.0.name"),
        ("name: s\nmodules:\n  - {family: lora, sizes: [0, 4], per_layer: true, options: {use_magic: [true]}}\n",
         "options.use_magic: not an option of lora"),
        ("name: s\nmodules:\n  - {family: [lora, ia3], name: x, sizes: [0, 1], mask: own, targets: [qv]}\n", "targets"),
        ("name: s\nmodules:\n  - {family: loha, sizes: [0, 4], mask: own}\n  - {family: serial, sizes: [0, 4], mask: own}\n",
         "loha is built by peft alone"),
        ("name: s\nmodules:\n  - {family: lora, sizes: [0, 4], mask: own, options: {use_dora: [false, true]}}\n"
         "  - {family: serial, sizes: [0, 4], mask: own}\n", "DoRA"),
        ("name: s\nmodules:\n  - {family: [lora, serial], name: x, sizes: [0, 4], mask: own}\n"
         "  - {family: serial, sizes: [0, 4], mask: own}\n", "serial appears twice"),
    ],
)
def test_bad_space_files_get_one_line_errors(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(SpaceError, match=message.replace("|", r"\|")):
        load_space(str(path), BERT_BASE)


def test_a_space_only_families_the_model_cannot_hold_is_one_line(tmp_path):
    path = tmp_path / "loha.yaml"
    path.write_text("name: s\nmodules:\n  - {family: loha, sizes: [0, 4], per_layer: true}\n")
    with pytest.raises(SpaceError, match="loha: peft builds it on nn.Linear layers only.*Conv1D"):
        load_space(str(path), structure_of(TINY_CONFIGS["gpt2"]()))


def test_unknown_space_name_lists_the_builtin_ones():
    with pytest.raises(SpaceError, match="autopeft, llm-lora, lora, lora-variants, mixed"):
        load_space("nonexistent", BERT_BASE)
