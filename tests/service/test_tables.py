"""Real-world tables through the service: messy CSVs in, typed columns, training with gaps, replayable predictions."""

from __future__ import annotations

import io
import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from support import read_weights

# A European export: semicolons, decimal commas, a BOM, CRLF, quoted fields with the delimiter and
# a newline inside, every default missing marker, a boolean column, a text column; two rows
# without a label and a column with no value at all.
EUROPEAN = (
    "\ufeffage;income;city;member;notes;bought\r\n"
    '34;1200,5;"Lyon; Rhône";yes;;no\r\n'
    "51;NA;Paris;no;;yes\r\n"
    '?;980,25;"Lille\r\nNord";true;;no\r\n'
    "29;N/A;Paris;;;yes\r\n"
    "44;1500;NaN;false;null;no\r\n"
    '38;1320,75;"Lyon; Rhône";FALSE;;\r\n'
    "62;2100;Paris;yes;;yes\r\n"
    "47;null;Lille;no;;NA\r\n"
).encode()


def _rows(n: int, seed: int = 0) -> list[list[str]]:
    """A table with numeric gaps and two text columns, its label following them."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        age, income = rng.normal(40, 12), rng.lognormal(3, 0.5)
        color, shape = rng.choice(["red", "green", "blue"]), rng.choice(["circle", "square", "star"])
        logit = 0.08 * (age - 40) - 0.05 * (income - 20) + {"red": 0.8, "green": -0.5, "blue": 0.0}[color]
        label = "yes" if rng.random() < 1 / (1 + np.exp(-logit)) else "no"
        cells = [f"{age:.2f}", f"{income:.3f}", color, shape, label]
        if rng.random() < 0.1:
            cells[0] = ""
        if rng.random() < 0.1:
            cells[1] = "NA"
        if rng.random() < 0.05:
            cells[3] = "?"
        rows.append(cells)
    return rows


def _upload(api, data: bytes, name: str = "t.csv", **form: str):
    return api.post("/v1/datasets", files={"file": (name, data, "text/csv")}, data=form)


def _onnx_equals_predict(api, job_id: str, rows: list[list], types: dict[str, str]) -> None:
    """The job's ONNX graph, fed one array per column (NaN / "" for a gap), answers as ``/predict`` does."""
    response = api.get(f"/v1/jobs/{job_id}/weights", params={"format": "onnx"})
    assert response.status_code == 200, response.text
    onnx.checker.check_model(onnx.load_from_string(response.content), full_check=True)
    session = ort.InferenceSession(response.content, providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == list(types)
    feed = {}
    for j, (name, kind) in enumerate(types.items()):
        cells = [row[j] for row in rows]
        if kind == "categorical":
            feed[name] = np.array(["" if v is None else v for v in cells], dtype=object)
        else:
            feed[name] = np.array([np.nan if v is None else float(v) for v in cells], dtype=np.float64)
    label, probabilities = session.run(["label", "probabilities"], feed)
    expected = api.post(f"/v1/jobs/{job_id}/predict", json={"inputs": rows}).json()
    assert label.tolist() == expected["predictions"]
    np.testing.assert_allclose(probabilities, expected["probabilities"], rtol=0, atol=1e-6)


def test_a_european_export_uploads_with_types_gaps_and_a_note(api):
    response = _upload(api, EUROPEAN, decimal=",")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["n_samples"] == 8 and body["feature_names"] == ["age", "income", "city", "member"]
    columns = {c["name"]: c for c in body["columns"]}
    assert columns["age"] == {
        "name": "age", "type": "numeric", "missing": 1, "min": 29.0, "mean": pytest.approx(305 / 7), "max": 62.0,
        "distinct": None, "top": None,
    }  # fmt: skip
    assert columns["income"]["missing"] == 3 and columns["income"]["min"] == 980.25
    assert columns["city"]["type"] == "categorical" and columns["city"]["missing"] == 1
    assert columns["city"]["distinct"] == 4
    assert columns["city"]["top"][0] == {"level": "Paris", "count": 3}
    assert {"level": "Lille\r\nNord", "count": 1} in columns["city"]["top"]
    assert columns["member"]["type"] == "boolean" and columns["member"]["missing"] == 1
    assert columns["bought"]["missing"] == 2 and body["rows_missing_target"] == 2
    assert body["notes"] == ["column 'notes' has no values (every cell is missing) and was left out"]
    assert body["task"] == "classification" and body["classes"] == ["no", "yes"]


@pytest.mark.parametrize(
    ("case", "data", "form"),
    [
        ("tab", b"a\tb\ty\n1\tx\t0\n2\ty\t1\n3\tx\t1\n", {}),
        ("pipe, quoted", b'a|b|y\n1|"x|z"|0\n2|y|1\n3|"x|z"|1\n', {}),
        ("given delimiter", b"a:b:y\n1:x:0\n2:y:1\n3:x:1\n", {"delimiter": ":"}),
        ("custom na_values", b"a,b,y\n1,x,0\n-,y,1\n3,x,1\n", {"na_values": "-"}),
    ],
)
def test_delimiters_and_markers(api, case, data, form):
    response = _upload(api, data, **form)
    assert response.status_code == 201, response.text
    columns = response.json()["columns"]
    assert [c["type"] for c in columns] == ["numeric", "categorical", "numeric"], case
    if case == "custom na_values":
        assert columns[0]["missing"] == 1


def test_thirty_bad_cells_list_twenty_with_row_and_column(api):
    lines = ["a,b,c,y"]
    for i in range(1, 401):
        a = "oops" if i % 20 == 0 else str(i)  # 20 text cells in a numeric column
        c = "inf" if i % 40 == 0 else "1.5"  # 10 infinite values
        lines.append(f"{a},{i % 7},{c},{i % 2}")
    response = _upload(api, ("\n".join(lines) + "\n").encode())
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["detail"].startswith("30 bad cells (the first 20 listed)")
    cells = problem["bad_cells"]
    assert len(cells) == 20
    assert cells[0] == {
        "row": 20,
        "line": 21,
        "column": "a",
        "value": "oops",
        "reason": "is not a number, in a numeric column (95% of its values are numbers)",
    }
    assert [(c["row"], c["column"]) for c in cells[:3]] == [(20, "a"), (40, "a"), (40, "c")]
    assert all(c["row"] >= 1 and c["column"] in ("a", "c") for c in cells)


def test_a_ten_thousand_level_id_column_is_pooled(api, wait_job):
    rows = "".join(f"id{i:05d},{i % 3 * 1.5},{'ab'[i % 2]}\n" for i in range(10_000))
    dataset = _upload(api, ("id,x,y\n" + rows).encode()).json()
    assert dataset["columns"][0]["type"] == "categorical" and dataset["columns"][0]["distinct"] == 10_000
    job = api.post(
        "/v1/jobs",
        json={
            "dataset": dataset["id"],
            "model": {"type": "logistic"},
            "preprocessing": {"max_categories": 20},
            "training": {"epochs": 1},
        },
    )
    assert job.status_code == 202, job.text
    done = wait_job(api, job.json()["id"])
    assert done["status"] == "succeeded", done["error"]
    meta = json.loads(str(np.load(io.BytesIO(api.get(f"/v1/jobs/{done['id']}/weights").content))["metadata"]))
    assert meta["layer_sizes"][0] == 20 + 1  # 19 kept levels, the pooled one, and x
    assert len(meta["preprocessing"]["columns"][0]["levels"]) == 19
    kept, pooled = meta["preprocessing"]["columns"][0]["levels"][0], meta["preprocessing"]["columns"][0]["pooled"][0]
    rows = [[kept, 1.5], [pooled, 0.0], ["never-seen", 3.0], [kept, None]]
    _onnx_equals_predict(api, done["id"], rows, {"id": "categorical", "x": "numeric"})


def test_train_on_a_table_with_gaps_and_replay_predict_from_the_weights_file(api, wait_job, reference_forward):
    rows = _rows(300)
    rows[5][4] = ""  # two rows without a label: left out, and counted
    rows[9][4] = "NA"
    text = "age,income,color,shape,bought\n" + "".join(",".join(r) + "\n" for r in rows)
    dataset = _upload(api, text.encode()).json()
    spec = {
        "dataset": dataset["id"],
        "model": {"type": "mlp", "hidden_layers": [8]},
        "preprocessing": {"missing_indicators": True, "impute_categorical": "missing_level"},
        "training": {"epochs": 5, "batch_size": 32},
    }
    none = api.post("/v1/jobs", json={**spec, "preprocessing": {"impute_numeric": "none"}})
    assert none.status_code == 422 and none.json()["errors"][0]["field"] == "preprocessing.impute_numeric"
    assert "'age'" in none.json()["detail"]
    unknown = api.post("/v1/jobs", json={**spec, "features": ["age", "colour"]})
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "features"

    job = api.post("/v1/jobs", json=spec).json()
    assert job["dataset"]["rows_missing_target"] == 2
    assert job["spec"]["preprocessing"] == {
        "categorical": "onehot",
        "max_categories": 50,
        "impute_numeric": "mean",
        "impute_categorical": "missing_level",
        "missing_indicators": True,
    }
    done = wait_job(api, job["id"])
    assert done["status"] == "succeeded", done["error"]

    inputs = [
        [41.0, 22.5, "red", "star"],
        [None, 18.0, "purple", None],  # a gap, an unseen level, a missing level
        [None, None, None, None],
        [63.5, None, "blue", "circle"],
    ]
    objects = [dict(zip(["age", "income", "color", "shape"], row, strict=True)) for row in inputs]
    objects[0]["bought"] = "yes"  # the target may come along; it is ignored
    by_array = api.post(f"/v1/jobs/{job['id']}/predict", json={"inputs": inputs})
    by_object = api.post(f"/v1/jobs/{job['id']}/predict", json={"inputs": objects})
    assert by_array.status_code == 200, by_array.text
    assert by_object.json() == by_array.json()
    body = by_array.json()

    for fmt in ("npz", "safetensors", "json"):
        tensors, metadata = read_weights(api.get(f"/v1/jobs/{job['id']}/weights", params={"format": fmt}).content, fmt)
        assert metadata["preprocessing"]["outputs"][:2] == ["age", "age<missing>"]
        labels, proba = reference_forward(tensors, metadata)(inputs)
        assert labels == body["predictions"]
        np.testing.assert_allclose(proba, body["probabilities"], rtol=0, atol=1e-6)

    bad = api.post(f"/v1/jobs/{job['id']}/predict", json={"inputs": [{"age": 1, "colour": "red"}]})
    assert bad.status_code == 422 and "colour" in bad.json()["detail"]

    # ONNX: one input per column; fills, missing indicators, the missing level and unseen levels as /predict.
    types = {"age": "numeric", "income": "numeric", "color": "categorical", "shape": "categorical"}
    _onnx_equals_predict(api, job["id"], inputs, types)


def test_a_sweep_searches_preprocessing(api):
    rows = _rows(120, seed=3)
    text = "age,income,color,shape,bought\n" + "".join(",".join(r) + "\n" for r in rows)
    dataset = _upload(api, text.encode()).json()
    sweep = api.post(
        "/v1/sweeps",
        json={
            "base": {"dataset": dataset["id"], "model": {"type": "logistic"}, "training": {"epochs": 1}},
            "parameters": {"preprocessing.impute_numeric": {"values": ["mean", "median", "zero"]}},
            "strategy": "grid",
        },
    )
    assert sweep.status_code == 202, sweep.text
    trials = sweep.json()["leaderboard"]
    assert sorted(t["parameters"]["preprocessing.impute_numeric"] for t in trials) == ["mean", "median", "zero"]
    for trial in trials:
        spec = api.get(f"/v1/jobs/{trial['trial_id']}").json()["spec"]
        assert spec["preprocessing"]["impute_numeric"] == trial["parameters"]["preprocessing.impute_numeric"]
    api.post(f"/v1/sweeps/{sweep.json()['id']}/cancel")


def test_builtin_datasets_list_their_columns(api):
    iris = api.get("/v1/datasets/iris").json()
    assert [c["type"] for c in iris["columns"]] == ["numeric"] * 4 + ["categorical"]
    species = iris["columns"][-1]
    assert [species[k] for k in ("name", "type", "missing", "distinct")] == ["species", "categorical", 0, 3]
    assert species["top"] == [{"level": name, "count": 50} for name in ("setosa", "versicolor", "virginica")]
