"""A dataset that a queued or running job or sweep needs cannot be deleted (409 naming them)."""

from __future__ import annotations

from support import poll, wait_for_job

CSV = b"x1,x2,label\n" + b"".join(f"{i % 7},{(i * 3) % 5},{'ab'[i % 2]}\n".encode() for i in range(200))
#: Long enough to stay queued or running until the test cancels it.
LONG = {"model": {"type": "mlp", "hidden_layers": [64]}, "training": {"epochs": 5000, "batch_size": 4}}


def test_a_dataset_in_use_is_kept_until_its_jobs_and_sweeps_end(api):
    dataset = api.post("/v1/datasets", files={"file": ("in-use.csv", CSV, "text/csv")}).json()["id"]
    job = api.post("/v1/jobs", json={"dataset": dataset, **LONG}).json()["id"]
    sweep = api.post(
        "/v1/sweeps",
        json={
            "base": {"dataset": dataset, **LONG},
            "parameters": {"regularization.l2": {"values": [0.0, 0.01]}},
            "max_concurrent_trials": 1,
        },
    ).json()["id"]

    refused = api.delete(f"/v1/datasets/{dataset}")
    assert refused.status_code == 409, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert job in refused.json()["detail"] and sweep in refused.json()["detail"]
    assert api.get(f"/v1/datasets/{dataset}").status_code == 200

    api.post(f"/v1/jobs/{job}/cancel")
    wait_for_job(api, job)
    still = api.delete(f"/v1/datasets/{dataset}")
    assert still.status_code == 409 and job not in still.json()["detail"] and sweep in still.json()["detail"]

    api.post(f"/v1/sweeps/{sweep}/cancel")
    poll(lambda: api.get(f"/v1/sweeps/{sweep}").json()["status"] == "cancelled", 60, what="the sweep to end")
    assert api.delete(f"/v1/datasets/{dataset}").status_code == 204
    assert api.get(f"/v1/datasets/{dataset}").status_code == 404
    # A job can no longer name it.
    gone = api.post("/v1/jobs", json={"dataset": dataset, "training": {"epochs": 1}})
    assert gone.status_code == 422 and gone.json()["errors"][0]["field"] == "dataset"


def test_built_in_datasets_cannot_be_deleted(api):
    response = api.delete("/v1/datasets/iris")
    assert response.status_code == 409 and "built in" in response.json()["detail"]
