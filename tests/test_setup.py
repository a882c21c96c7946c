"""Tests of mtsp.setup: refusals, defaults, round trips, the teacher Gram, single() and replace()."""
import copy
import math
import pickle

import numpy as np
import pytest

from mtsp.setup import (Setup, SetupError, SetupWarning, class_map_matrix, default_heads, default_setup, load_setup,
                        setup_from_dict, setup_from_toml)


def base(**sections):
    """A valid two-task shared/online setup as a dict; ``sections`` update its tables."""
    d = {
        "name": "t",
        "tasks": [{"name": "A", "classes": 3, "noise": 1.0}, {"name": "B", "classes": 3}],
        "teacher": {"alignment": 0.5},
        "student": {"kind": "shared", "hidden": 2, "init_scale": 0.1},
        "training": {"protocol": "online", "lr": 0.5, "times": [1, 2, 4]},
    }
    for k, v in sections.items():
        if isinstance(v, dict) and isinstance(d.get(k), dict):
            d[k].update(v)
        else:
            d[k] = v
    return d


def glm(**training):
    d = base(student={"kind": "glm"})
    del d["student"]["hidden"]
    d["training"] = {"protocol": "online", "lr": 0.5, "times": [1, 2]} | training
    for k in [k for k, v in d["training"].items() if v is None]:
        del d["training"][k]
    return d


def refused(d, key, *words):
    with pytest.raises(SetupError) as e:
        setup_from_dict(d)
    assert e.value.key == key, str(e.value)
    assert str(e.value).startswith(f"{key}: ")
    for w in words:
        assert w in e.value.reason, str(e.value)
    return e.value


# ---------------------------------------------------------------------------------------------- loading

def test_minimal_defaults():
    s = setup_from_dict(base())
    a, b = s.tasks
    assert (a.noise, b.noise, a.weight, a.norm, a.rank, a.alpha, a.share) == (1.0, 0.0, 1.0, 1.0, 3, None, 1.0)
    assert (s.T, s.n_tasks, s.classes, s.offsets, s.M) == (2, 2, (3, 3), (0, 3), 6)
    assert s.training.head_lr == 0.5 and s.training.inputs == "shared" and s.training.times == (1.0, 2.0, 4.0)
    assert s.student.activation == "linear"
    assert s.teacher == s.teacher.__class__(norm=1.0, alignment=0.5, class_map="aligned", seed=0, gram=None)
    np.testing.assert_allclose(s.noise(), [1, 0])
    np.testing.assert_allclose(s.weights(), [1, 1])
    np.testing.assert_allclose(s.shares(), [0.5, 0.5])


def test_default_heads_documented_rule():
    s = setup_from_dict(base())
    for t, h in enumerate(s.heads()):
        expected = np.random.default_rng(1000 + t).standard_normal((3, 2)) / math.sqrt(2) * 0.5
        np.testing.assert_array_equal(h, expected)
    assert not s.student.head_init_given


def test_default_task_names():
    d = base()
    for t in d["tasks"]:
        del t["name"]
    assert [t.name for t in setup_from_dict(d).tasks] == ["task1", "task2"]


def test_toml_and_file(tmp_path):
    text = """
[[tasks]]
name = "A"
classes = 2
noise = 0.3
[student]
kind = "glm"
[training]
protocol = "online"
lr = 0.5
times = [1, 2, 4, 8]
"""
    s = setup_from_toml(text)
    assert s.name == "unnamed" and s.student.kind == "glm" and s.student.head_init is None
    p = tmp_path / "check1.toml"
    p.write_text(text)
    assert load_setup(p).name == "check1"
    refused_toml = pytest.raises(SetupError, setup_from_toml, "[[tasks]\n")
    assert refused_toml.value.key == "file"
    with pytest.raises(SetupError) as e:
        load_setup(tmp_path / "missing.toml")
    assert e.value.key == "file"


def test_default_setup():
    s = default_setup()
    assert [t.name for t in s.tasks] == ["clean", "noisy"]
    assert [t.noise for t in s.tasks] == [0.0, 2.0] and s.classes == (3, 3)
    assert s.teacher.alignment == 0.95
    assert (s.student.kind, s.student.hidden, s.student.activation, s.student.init_scale) == ("shared", 4, "linear", 0.1)
    tr = s.training
    assert (tr.protocol, tr.lr, tr.head_lr, tr.times) == ("online", 0.5, 0.5, (1.0, 2.0, 4.0, 8.0))


def test_error_is_picklable_value_error():
    err = pickle.loads(pickle.dumps(SetupError("tasks.A.noise", "must be >= 0")))
    assert isinstance(err, ValueError) and err.key == "tasks.A.noise" and str(err) == "tasks.A.noise: must be >= 0"


# ---------------------------------------------------------------------------------------------- refusals

def with_task(i, **kw):
    d = base()
    d["tasks"][i].update(kw)
    return d


@pytest.mark.parametrize("d, key, words", [
    (base(extra=1), "extra", ["unknown"]),
    (with_task(1, clases=3), "tasks.B.clases", ["unknown"]),
    (base(teacher={"alignmnet": 0.1}), "teacher.alignmnet", ["unknown"]),
    (base(student={"width": 2}), "student.width", ["unknown"]),
    (base(training={"steps": 2}), "training.steps", ["unknown"]),
    (base(tasks=[]), "tasks", ["non-empty"]),
    (base(tasks={"name": "A"}), "tasks", []),
    ({k: v for k, v in base().items() if k != "tasks"}, "tasks", ["missing"]),
    ({k: v for k, v in base().items() if k != "student"}, "student", ["missing"]),
    ({k: v for k, v in base().items() if k != "training"}, "training", ["missing"]),
    (base(tasks=[{"name": "A"}]), "tasks.A.classes", ["missing"]),
    (with_task(0, classes=1), "tasks.A.classes", [">= 2"]),
    (with_task(0, classes=3.0), "tasks.A.classes", ["integer"]),
    (with_task(0, classes=True), "tasks.A.classes", ["integer"]),
    (with_task(1, name="A"), "tasks[1].name", ["duplicate"]),
    (with_task(1, name="x.y"), "tasks[1].name", ["'.'"]),
    (with_task(1, name=3), "tasks[1].name", []),
    (with_task(0, noise=-0.1), "tasks.A.noise", [">= 0"]),
    (with_task(0, noise=True), "tasks.A.noise", ["number"]),
    (with_task(0, noise="1"), "tasks.A.noise", ["number"]),
    (with_task(0, noise=float("nan")), "tasks.A.noise", ["finite"]),
    (with_task(0, weight=-1), "tasks.A.weight", [">= 0"]),
    (base(tasks=[{"name": "A", "classes": 2, "weight": 0}, {"name": "B", "classes": 2, "weight": 0.0}]),
     "tasks", ["weights are zero"]),
    (with_task(0, norm=0), "tasks.A.norm", ["> 0"]),
    (base(teacher={"norm": -1}), "teacher.norm", ["> 0"]),
    (with_task(0, rank=0), "tasks.A.rank", []),
    (with_task(0, rank=4), "tasks.A.rank", ["1..3"]),
    (base(teacher={"alignment": 1.01}), "teacher.alignment", ["positive semidefinite", "[-1, 1]"]),
    (base(teacher={"alignment": -1.01}), "teacher.alignment", ["positive semidefinite"]),
    (base(teacher={"class_map": "identity"}), "teacher.class_map", ["aligned"]),
    (base(teacher={"seed": -1}), "teacher.seed", []),
    (base(student={"kind": "mlp"}), "student.kind", ["glm"]),
    (base(student={"hidden": 0}), "student.hidden", []),
    (base(student={"activation": "sigmoid"}), "student.activation", ["relu"]),
    (base(student={"init_scale": -0.1}), "student.init_scale", [">= 0"]),
    (base(training={"protocol": "sgd"}), "training.protocol", ["online"]),
    (base(training={"protocol": "erm", "alpha": 2, "times": None}), "training.protocol", ["glm"]),
    (base(training={"inputs": "mixed"}), "training.inputs", ["separate"]),
    (base(training={"lr": 0}), "training.lr", ["> 0"]),
    (base(training={"head_lr": -1}), "training.head_lr", ["> 0"]),
    (base(training={"weight_decay": -1}), "training.weight_decay", [">= 0"]),
    (base(training={"times": []}), "training.times", ["non-empty"]),
    (base(training={"times": [1, 1]}), "training.times", ["increasing"]),
    (base(training={"times": [2, 1]}), "training.times", ["increasing"]),
    (base(training={"times": [0, 1]}), "training.times", ["positive"]),
    (base(training={"times": 3}), "training.times", []),
])
def test_refusals(d, key, words):
    refused(d, key, *words)


def test_missing_times_and_lr():
    d = base()
    del d["training"]["times"]
    refused(d, "training.times", "missing")
    d = base()
    del d["training"]["lr"]
    refused(d, "training.lr", "missing")


def test_alignment_range_depends_on_task_count():
    three = base(tasks=[{"name": n, "classes": 2} for n in "ABC"])
    three["teacher"]["alignment"] = -0.5
    assert np.linalg.eigvalsh(setup_from_dict(three).gram())[0] > -1e-12
    three["teacher"]["alignment"] = -0.51
    refused(three, "teacher.alignment", "[-0.5, 1]")
    # with mixed ranks feature 0 is still shared by every task
    three["tasks"][2]["rank"] = 1
    refused(three, "teacher.alignment")


def test_glm_refusals():
    for k, v in [("hidden", 2), ("head_init", [[[0, 0]], [[0, 0]]])]:
        d = glm()
        d["student"][k] = v
        refused(d, f"student.{k}", "glm")
    d = glm()
    d["student"]["activation"] = "relu"
    refused(d, "student.activation", "linear")
    d["student"]["activation"] = "linear"
    assert setup_from_dict(d).student.activation == "linear"
    d = base()
    del d["student"]["hidden"]
    refused(d, "student.hidden", "missing")


def test_head_init_refusals():
    d = base(student={"head_init": [[[0.1, 0.2]] * 3]})
    refused(d, "student.head_init", "2 matrices")
    d = base(student={"head_init": [[[0.1, 0.2]] * 3, [[0.1, 0.2, 0.3]] * 3]})
    refused(d, "student.head_init[1]", "'B'", "3 x 2")
    d = base(student={"head_init": [[[0.1, 0.2]] * 3, [[0.1, 0.2], [0.1]]]})
    refused(d, "student.head_init[1]")
    d = base(student={"head_init": [[[0.1, 0.2]] * 3, [[0.1, float("inf")]] * 3]})
    refused(d, "student.head_init[1]", "finite")
    ok = base(student={"head_init": [[[0.1, 0.2]] * 3, np.ones((3, 2))]})
    s = setup_from_dict(ok)
    assert s.student.head_init_given
    np.testing.assert_array_equal(s.heads()[1], np.ones((3, 2)))


def test_gram_refusals():
    ok = np.eye(6)
    for k, v in [("norm", 1), ("alignment", 0.0), ("class_map", "aligned"), ("seed", 0)]:
        refused(base() | {"teacher": {"gram": ok.tolist(), k: v}}, f"teacher.{k}", "ambiguous")
    d = base() | {"teacher": {"gram": ok.tolist()}}
    setup_from_dict(d)
    d["tasks"][0]["norm"] = 2.0
    refused(d, "tasks.A.norm", "ambiguous")
    del d["tasks"][0]["norm"]
    d["tasks"][1]["rank"] = 2
    refused(d, "tasks.B.rank", "ambiguous")

    def gram(g):
        return refused({**d, "tasks": base()["tasks"], "teacher": {"gram": g}}, "teacher.gram")
    assert "6" in gram(np.eye(5).tolist()).reason
    assert "M x M" in gram(np.ones((6, 5)).tolist()).reason
    asym = np.eye(6)
    asym[0, 1] = 1e-6
    assert "symmetric" in gram(asym.tolist()).reason
    notpsd = np.eye(6)
    notpsd[0, 1] = notpsd[1, 0] = 1.5
    assert "semidefinite" in gram(notpsd.tolist()).reason
    nan = np.eye(6)
    nan[2, 2] = np.nan
    assert "finite" in gram(nan.tolist()).reason
    gram([[1, 0, 0, 0, 0, True]] * 6)


def test_explicit_gram_accepted_and_singular_ok():
    rng = np.random.default_rng(0)
    b = rng.standard_normal((6, 4))
    g = b @ b.T / 4  # rank 4 < 6: singular but PSD
    s = setup_from_dict(base() | {"teacher": {"gram": g}})
    np.testing.assert_allclose(s.gram(), (g + g.T) / 2, rtol=0, atol=1e-15)
    assert s.teacher.norm == 1.0 and s.tasks[0].rank == 3  # placeholders


def test_finite_data_alpha_rules():
    d = glm(protocol="full_batch")
    refused(d, "training.alpha", "missing")
    d["training"]["alpha"] = 3
    s = setup_from_dict(d)
    assert s.training.alpha == 3.0 and s.tasks[0].alpha is None
    d = glm(protocol="full_batch", inputs="separate")
    refused(d, "tasks.A.alpha", "separate")
    d["tasks"][0]["alpha"] = 2
    refused(d, "tasks.B.alpha", "missing")
    d["training"]["alpha"] = 5
    s = setup_from_dict(d)
    assert [t.alpha for t in s.tasks] == [2.0, 5.0]
    d["tasks"][0]["alpha"] = 0
    refused(d, "tasks.A.alpha", "> 0")
    d = glm(protocol="full_batch", alpha=-1)
    refused(d, "training.alpha", "> 0")


def test_separate_online_shares():
    d = base(training={"inputs": "separate"})
    d["tasks"][0]["share"] = 3
    s = setup_from_dict(d)
    np.testing.assert_allclose(s.shares(), [0.75, 0.25])
    d["tasks"][0]["share"] = 0
    refused(d, "tasks.A.share", "> 0")


def test_erm_rules():
    d = glm(protocol="erm", alpha=2, times=None, ridge=0.1, coupling=1.0)
    del d["training"]["lr"]
    s = setup_from_dict(d)
    assert (s.training.times, s.training.ridge, s.training.coupling) == (None, 0.1, 1.0)
    with pytest.warns(SetupWarning, match="training.times"):
        setup_from_dict({**d, "training": {**d["training"], "times": [1, 2]}})
    with pytest.warns(SetupWarning, match="training.weight_decay"):
        setup_from_dict({**d, "training": {**d["training"], "weight_decay": 0.1}})
    refused({**d, "training": {**d["training"], "ridge": -1}}, "training.ridge", ">= 0")
    refused({**d, "training": {**d["training"], "coupling": -1}}, "training.coupling", ">= 0")
    unequal = copy.deepcopy(d)
    unequal["tasks"][1]["classes"] = 4
    refused(unequal, "training.coupling", "equal classes")
    one = copy.deepcopy(d)
    one["tasks"] = one["tasks"][:1]
    refused(one, "training.coupling", "two tasks")
    one["training"]["coupling"] = 0
    setup_from_dict(one)


# ---------------------------------------------------------------------------------------------- the Gram

def test_gram_aligned_with_ranks_and_norms():
    d = base(tasks=[{"name": "A", "classes": 3, "norm": 4.0}, {"name": "B", "classes": 4, "rank": 2}],
             teacher={"norm": 2.0, "alignment": 0.6})
    s = setup_from_dict(d)
    assert (s.tasks[0].norm, s.tasks[1].norm, s.tasks[1].rank) == (4.0, 2.0, 2)
    expected = np.zeros((7, 7))
    expected[:3, :3] = 4 * np.eye(3)
    expected[3:, 3:] = 2 * np.diag([1, 1, 0, 0])
    cross = math.sqrt(8) * 0.6 * np.eye(3, 4)[:, :4] * np.array([1, 1, 0, 0])
    expected[:3, 3:], expected[3:, :3] = cross, cross.T
    np.testing.assert_allclose(s.gram(), expected, atol=1e-15)
    assert np.linalg.matrix_rank(s.gram()[3:, 3:]) == 2


def test_gram_random_class_map():
    d = base(tasks=[{"name": "A", "classes": 3}, {"name": "B", "classes": 4, "rank": 2}],
             teacher={"alignment": 0.7, "class_map": "random", "seed": 5})
    s = setup_from_dict(d)
    o = []
    for t, (c, r) in enumerate([(3, 3), (4, 2)]):
        q, rr = np.linalg.qr(np.random.default_rng(5 + t).standard_normal((c, r)))
        q = q * np.sign(np.diag(rr))
        np.testing.assert_allclose(class_map_matrix(c, r, "random", 5 + t), q, atol=1e-14)
        np.testing.assert_allclose(q.T @ q, np.eye(r), atol=1e-12)
        o.append(q)
    g = s.gram()
    np.testing.assert_allclose(g[:3, :3], o[0] @ o[0].T, atol=1e-12)
    np.testing.assert_allclose(g[3:, 3:], o[1] @ o[1].T, atol=1e-12)
    np.testing.assert_allclose(g[:3, 3:], 0.7 * o[0] @ np.eye(3, 2) @ o[1].T, atol=1e-12)
    np.testing.assert_allclose(g, g.T)
    assert np.linalg.eigvalsh(g)[0] > -1e-12
    assert s.gram() is not s.gram()  # a copy every time
    s.gram()[0, 0] = 99
    assert s.gram()[0, 0] != 99


def test_gram_alignment_extremes_psd():
    for rho in (-1.0, 0.0, 1.0):
        s = setup_from_dict(base(teacher={"alignment": rho}))
        assert np.linalg.eigvalsh(s.gram())[0] > -1e-12


# ---------------------------------------------------------------------------------------------- round trips

ROUND_TRIP_CASES = [
    base(),
    base(student={"head_init": [[[0.1, 0.2]] * 3, [[0.3, 0.4]] * 3], "activation": "erf"}),
    base(tasks=[{"name": "A", "classes": 3, "norm": 2.0, "rank": 2, "weight": 0.5},
                {"name": "B", "classes": 2, "noise": 0.5}],
         teacher={"class_map": "random", "seed": 3, "norm": 1.5}),
    base() | {"teacher": {"gram": (0.5 * np.eye(6) + 0.5).tolist()}},
    base(training={"inputs": "separate", "head_lr": 0.1, "weight_decay": 0.01}) | {
        "tasks": [{"name": "A", "classes": 3, "share": 2.0}, {"name": "B", "classes": 3}]},
    glm(protocol="full_batch", alpha=3, inputs="separate") | {
        "tasks": [{"name": "A", "classes": 2, "alpha": 1.5}, {"name": "B", "classes": 2}]},
    glm(protocol="erm", alpha=2, times=None, ridge=0.1, coupling=0.5),
]


@pytest.mark.parametrize("d", ROUND_TRIP_CASES)
def test_round_trip(d):
    s = setup_from_dict(d)
    again = setup_from_dict(s.to_dict())
    assert again == s
    assert again.student.head_init_given == s.student.head_init_given
    np.testing.assert_array_equal(again.gram(), s.gram())
    # to_dict is TOML-shaped: plain dicts, lists, str, int, float
    def plain(x):
        if isinstance(x, dict):
            return all(isinstance(k, str) and plain(v) for k, v in x.items())
        if isinstance(x, list):
            return all(plain(v) for v in x)
        return isinstance(x, (str, int, float)) and not isinstance(x, bool)
    assert plain(s.to_dict())


def test_round_trip_through_toml_text():
    tomli_w = pytest.importorskip("tomli_w")
    s = default_setup()
    assert setup_from_toml(tomli_w.dumps(s.to_dict())) == s


# ---------------------------------------------------------------------------------------------- single()

@pytest.mark.parametrize("teacher", [{"alignment": 0.5}, {"alignment": 0.3, "class_map": "random", "seed": 7},
                                     {"gram": None}])
def test_single_keeps_block_and_head(teacher):
    d = base(tasks=[{"name": "A", "classes": 3, "noise": 1.0, "rank": 2}, {"name": "B", "classes": 4},
                    {"name": "C", "classes": 2, "norm": 3.0}], teacher=teacher)
    if "gram" in teacher:
        rng = np.random.default_rng(1)
        b = rng.standard_normal((9, 9))
        d["teacher"] = {"gram": (b @ b.T / 9).tolist()}
        d["tasks"][0].pop("rank")
        d["tasks"][2].pop("norm")
    s = setup_from_dict(d)
    g = s.gram()
    for t in range(3):
        for key in (t, s.tasks[t].name):
            one = s.single(key)
            o, c = s.offsets[t], s.classes[t]
            assert one.T == 1 and one.tasks[0] == s.tasks[t]
            np.testing.assert_allclose(one.gram(), g[o:o + c, o:o + c], rtol=0, atol=1e-14)
            np.testing.assert_array_equal(one.heads()[0], s.heads()[t])
            assert one.student.hidden == s.student.hidden and one.training == s.training
            assert setup_from_dict(one.to_dict()) == one


def test_single_separate_finite_data_and_coupling():
    d = glm(protocol="erm", alpha=2, times=None, coupling=1.0, inputs="separate")
    d["tasks"][1]["alpha"] = 4
    s = setup_from_dict(d)
    one = s.single("B")
    assert one.tasks[0].alpha == 4.0 and one.training.coupling == 0.0 and one.training.alpha == 2.0
    assert s.single("A").tasks[0].alpha == 2.0
    with pytest.raises(SetupError) as e:
        s.single("Z")
    assert e.value.key == "tasks"


# ---------------------------------------------------------------------------------------------- replace()

def test_replace_basic():
    s = setup_from_dict(base())
    r = s.replace(**{"teacher.alignment": 0.9, "tasks.A.noise": 0.2, "training.lr": 2.0, "name": "new"})
    assert (r.teacher.alignment, r.tasks[0].noise, r.training.lr, r.name) == (0.9, 0.2, 2.0, "new")
    assert r.training.head_lr == 2.0  # head_lr followed lr: it was defaulted
    assert s.teacher.alignment == 0.5  # original untouched
    assert s.replace() == s
    assert s.replace(**{"tasks.1.noise": 0.3}).tasks[1].noise == 0.3


def test_replace_hidden_redraws_default_heads_but_keeps_explicit_ones():
    s = setup_from_dict(base())
    r = s.replace(**{"student.hidden": 4})
    assert r.heads()[0].shape == (3, 4)
    np.testing.assert_array_equal(r.heads()[1], default_heads([3, 3], 4)[1])
    explicit = setup_from_dict(base(student={"head_init": [[[0.1, 0.2]] * 3] * 2}))
    with pytest.raises(SetupError) as e:
        explicit.replace(**{"student.hidden": 4})
    assert e.value.key == "student.head_init[0]"


def test_replace_teacher_norm_moves_defaulted_tasks_only():
    d = base()
    d["tasks"][0]["norm"] = 3.0
    r = setup_from_dict(d).replace(**{"teacher.norm": 2.0})
    assert [t.norm for t in r.tasks] == [3.0, 2.0]


def test_replace_gram_and_back():
    s = setup_from_dict(base(tasks=[{"name": "A", "classes": 3, "rank": 2}, {"name": "B", "classes": 3}],
                             teacher={"norm": 2.0, "alignment": 0.4}))
    g = 0.5 * np.eye(6)
    r = s.replace(**{"teacher.gram": g})
    np.testing.assert_array_equal(r.gram(), g)
    back = r.replace(**{"teacher.alignment": 0.1})
    assert back.teacher.gram is None and back.teacher.alignment == 0.1 and back.tasks[0].rank == 3


def test_replace_none_removes_and_errors():
    s = setup_from_dict(glm(protocol="erm", alpha=2, times=None))
    r = s.replace(**{"training.protocol": "online", "training.alpha": None, "training.times": [1, 2],
                     "training.ridge": None, "training.coupling": None, "training.lr": 0.5})
    assert r.training.protocol == "online" and r.training.times == (1.0, 2.0)
    s = setup_from_dict(base())
    with pytest.raises(SetupError) as e:
        s.replace(**{"tasks.Z.noise": 1})
    assert e.value.key == "tasks.Z.noise"
    with pytest.raises(SetupError) as e:
        s.replace(**{"student.width": 1})
    assert e.value.key == "student.width"
    with pytest.raises(SetupError) as e:
        s.replace(**{"foo.bar.baz.qux": 1})
    assert e.value.key == "foo.bar.baz.qux"
    with pytest.raises(SetupError) as e:
        s.replace(**{"tasks.A.noise": -1})
    assert e.value.key == "tasks.A.noise"


def test_setup_is_frozen_and_hashable():
    s = setup_from_dict(base())
    with pytest.raises(Exception):
        s.name = "x"
    assert hash(s) == hash(setup_from_dict(base()))
    assert isinstance(s, Setup)


@pytest.mark.parametrize("d,key,word", [
    (base(training={"alpha": 2}), "training.alpha", "online"),
    (base(training={"ridge": 0.1}), "training.ridge", "erm"),
    (base(training={"coupling": 0.1}), "training.coupling", "erm"),
    (with_task(0, share=2), "tasks.A.share", "separate"),
    (with_task(0, alpha=2), "tasks.A.alpha", "separate"),
])
def test_keys_that_do_not_apply_warn_and_are_ignored(d, key, word):
    with pytest.warns(SetupWarning, match=key) as rec:
        s = setup_from_dict(d)
    assert word in str(rec[0].message) and "ignored" in str(rec[0].message)
    assert s.training.protocol == "online"
