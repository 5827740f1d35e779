"""The family registry: which library builds which families together, plan text and options, and what the
synthetic problem and the dashboard take from each family (the counting table is tests/test_counting.py)."""

from __future__ import annotations

import pytest

from autopeft.dashboard.data import SIZE_NAMES, layer_map_info
from autopeft.optim.synthetic import SyntheticPeft, capacity
from autopeft.search_spaces import ModulePlan, Plan, PlanError, families, load_space, structure_of
from autopeft.store.reader import TrialRow
from tests.models import TINY_CONFIGS

# (families in one plan) → the library that builds them, None when none can
LIBRARIES = [
    (("lora",), "peft"), (("ia3",), "peft"), (("loha",), "peft"), (("lokr",), "peft"),
    (("serial",), "adapters"), (("parallel",), "adapters"), (("prefix",), "adapters"),
    (("lora", "serial", "prefix"), "adapters"), (("ia3", "serial", "parallel", "prefix"), "adapters"),
    (("lora", "ia3"), None),  # AdapterHub holds one LoRA-type module; peft one adapter type
    (("loha", "serial"), None), (("lora", "lokr"), None), (("loha", "lokr"), None),
]


@pytest.mark.parametrize("names, library", LIBRARIES)
def test_library_for_a_set_of_families(names, library):
    assert families.library_for(names) == library
    assert families.export_formats(names) == ((library,) if library else ()) + ("yaml",)


def test_every_family_declares_what_the_rest_of_autopeft_asks():
    for name in families.NAMES:
        fam = families.get(name)
        assert fam.name == name and fam.description and fam.libraries
        assert set(fam.libraries) <= {"peft", "adapters"} and fam.synthetic_side in ("attention", "ffn")
        assert SIZE_NAMES[name] == fam.size_name
    with pytest.raises(PlanError, match="family: expected one of lora, ia3"):
        families.get("dora")


SUMMARIES = [
    (ModulePlan("lora", (0, 4, 4, 4), options={"use_dora": True, "use_rslora": True}), "lora r4@L1-3 qv a16 dora rslora"),
    (ModulePlan("loha", (2, 0, 0, 8), targets="all-linear"), "loha r2/8@L0,3 all-linear a8"),
    (ModulePlan("lokr", (16, 16, 0, 0), alpha=4, options={"decompose_both": True}), "lokr r16@L0-1 qv a4 decompose_both"),
    (ModulePlan("ia3", (1, 1, 0, 1)), "ia3@L0-1,3 kv-ffn"),
    (ModulePlan("serial", (8, 0, 8, 0)), "serial d8@L0,2"),
]


@pytest.mark.parametrize("module, text", SUMMARIES)
def test_summary_text_and_serial_form_round_trip(module, text):
    plan = Plan(4, (module,))
    assert plan.summary() == text
    assert Plan.from_text(plan.to_yaml()) == plan and Plan.from_dict(plan.to_dict()) == plan


def test_options_default_off_and_only_on_options_are_written():
    plain = ModulePlan("lora", (4, 0, 0, 0))
    assert plain.option("use_dora") is False and "use_dora" not in plain.to_dict()
    dora = ModulePlan("lora", (4, 0, 0, 0), options={"use_dora": True})
    assert dora.to_dict()["use_dora"] is True and dora != plain
    # a stored plan from before the options existed reads as the same plan
    assert Plan.from_dict({"format": "autopeft-plan/v1", "num_layers": 4,
                           "modules": [{"family": "lora", "sizes": [4, 0, 0, 0], "targets": "qv", "alpha": 16}]}) \
        == Plan(4, (plain,))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"family": "loha", "sizes": (2,), "options": {"use_dora": True}}, "loha.use_dora: not an option of loha"),
        ({"family": "lora", "sizes": (2,), "options": {"use_dora": "yes"}}, "expected true or false"),
        ({"family": "serial", "sizes": (2,), "alpha": 8}, "serial takes no alpha"),
        ({"family": "lokr", "sizes": (2,), "targets": "kv-ffn"}, "expected one of qv, attention, mlp, all-linear"),
        ({"family": "ia3", "sizes": (2,)}, "sizes up to 1"),
    ],
)
def test_module_plan_errors_name_the_field(kwargs, message):
    with pytest.raises(PlanError, match=message):
        ModulePlan(**kwargs)


def test_a_plan_no_library_builds_gets_one_line_naming_why():
    plan = Plan(4, (ModulePlan("loha", (2, 0, 0, 0)), ModulePlan("serial", (0, 4, 0, 0))))
    with pytest.raises(PlanError, match="no library builds loha \\+ serial"):
        load_space("lora", structure_of(TINY_CONFIGS["bert"]())).count(plan)


def test_synthetic_problem_takes_each_familys_terms():
    assert capacity("lora", 8, 768, "qv", 16, {"use_dora": True}) > capacity("lora", 8, 768, "qv", 16)
    # rsLoRA scales by alpha / sqrt(r): its best alpha is near 2 sqrt(r), not 2 r
    assert capacity("lora", 16, 768, "qv", 8, {"use_rslora": True}) > capacity("lora", 16, 768, "qv", 8)
    assert capacity("loha", 8, 768, "qv", 16) < capacity("lora", 8, 768, "qv", 16)
    space = load_space("lora-variants", structure_of(TINY_CONFIGS["llama"]()))
    problem = SyntheticPeft(space, seed=0)
    values = {name: problem.evaluate(Plan(4, (ModulePlan(name, (0, 4, 8, 8), targets="all-linear"),)))
              for name in ("lora", "loha", "lokr")}
    assert all(0.5 < v < 0.92 for v in values.values()) and len(set(values.values())) == 3


def test_dashboard_layer_map_lists_new_families_in_registry_order():
    def row(number, modules):
        return TrialRow(number=number, state="complete", metric=0.8, params_pct=1.0, params=10, summary="",
                        plan_json=Plan(4, modules).to_json(), failure=None, start=None, complete=None)

    info = layer_map_info([row(0, (ModulePlan("lokr", (0, 2, 2, 0)),)), row(1, (ModulePlan("lora", (4, 4, 0, 0)),))])
    assert info.families == ["lora", "lokr"]
    assert info.sizes["lokr"] == [[0, 2, 2, 0], [0, 0, 0, 0]] and info.usage["lokr"] == [0.0, 0.5, 0.5, 0.0]
