"""The task API (``/api/v1/tasks``): submit, read, cancel or purge, list."""

from __future__ import annotations

import math

from flask import Blueprint, request

from celery_app import model
from celery_app.batch import submit_batch
from celery_app.listing import Filters
from celery_app.store import NewTask
from celery_app.uploads import remove_task_files

from ..protocol import idempotency_key
from ..services import hub, services, store
from ..services import listing as task_listing
from .audit import entry
from .document import document, task_links
from .responses import (
    BatchCreatedSchema,
    DeletedSchema,
    EnvelopeSchema,
    StatisticsSchema,
    TaskPageSchema,
)
from .schemas import (
    BatchSchema,
    DeleteQuerySchema,
    GetQuerySchema,
    ListQuerySchema,
    PatchSchema,
    SubmitSchema,
    parse_json_object,
)

bp = Blueprint("tasks", __name__, url_prefix="/api/v1/tasks")

submit_schema = SubmitSchema()
batch_schema = BatchSchema()
list_schema = ListQuerySchema()
patch_schema = PatchSchema()
delete_schema = DeleteQuerySchema()
get_schema = GetQuerySchema()

RETRYABLE_STATES = frozenset({model.FAILED, model.DEAD_LETTER, model.CANCELLED, model.COMPLETED})


@bp.post("")
@document(summary="Submit a task", tags=("tasks",), body=SubmitSchema,
          responses={201: EnvelopeSchema, 200: EnvelopeSchema},
          description="201 creates the task. A repeated `Idempotency-Key` header (within 24 h; "
                      "1-255 visible ASCII characters) with the same request returns the "
                      "first task with 200 and creates nothing; with a different request, "
                      "422 naming the fields that differ.",
          errors=(422,), links={201: task_links(), 200: task_links()})
def submit():
    """Create a task; a repeated ``Idempotency-Key`` returns the first one (200)."""
    data = submit_schema.load(parse_json_object(request.get_data(cache=False)))
    key = idempotency_key()
    envelope, created = store().submit(NewTask(**data), idempotency_key=key)
    return envelope, 201 if created else 200


@bp.post("/batch")
@document(summary="Submit a batch of tasks", tags=("tasks",), body=BatchSchema,
          responses={201: BatchCreatedSchema, 200: BatchCreatedSchema},
          description="1-1000 tasks, all or nothing: one invalid item is a 400 naming it "
                      "(`tasks.3.priority: ...`) and nothing is created. The tasks are stored "
                      "and queued in one Redis transaction, in the request's order. "
                      "`Idempotency-Key` applies to the whole batch (200 with the first "
                      "batch's tasks; 422 when reused with a different batch).",
          errors=(422,))
def batch():
    """Create and queue every task of the batch, or none."""
    data = batch_schema.load(parse_json_object(request.get_data(cache=False)))
    items = [NewTask(**item) for item in data["tasks"]]
    envelopes, created = submit_batch(store(), items, idempotency_key())
    return {"tasks": envelopes, "count": len(envelopes)}, 201 if created else 200


@bp.get("/<task_id:task_id>")
@document(summary="Get a task", tags=("tasks",), query=GetQuerySchema,
          responses={200: EnvelopeSchema}, errors=(404,),
          description="With `wait=S` (0 < S <= 60) a long poll: answers as soon as the task "
                      "is in a final state, or after S seconds with its current envelope.")
def get(task_id: str):
    """One envelope; ``?wait=S`` holds the answer until the task is final (at most S s)."""
    wait = get_schema.load(request.args.to_dict()).get("wait")
    if wait is None:
        return store().get(task_id)
    with hub().final_waiter(task_id) as woken:  # registered before the read: no lost wake-up
        envelope = store().get(task_id)
        if envelope["state"] in model.FINAL_STATES:
            return envelope
        woken.wait(wait)  # set by this process's event reader; no Redis traffic meanwhile
    return store().get(task_id)


@bp.delete("/<task_id:task_id>")
@document(summary="Cancel a task, or purge a finished one", tags=("tasks",),
          query=DeleteQuerySchema, responses={200: [EnvelopeSchema, DeletedSchema]},
          errors=(404, 409),
          description="Without `purge`: pending, scheduled or retrying → cancelled (the "
                      "envelope); else 409. With `purge=true`: a final-state task is deleted "
                      "with its index entries, DLQ entry and files; else 409.")
def cancel(task_id: str):
    """Cancel a task that has not started; ``?purge=true`` deletes a finished one."""
    if delete_schema.load(request.args.to_dict())["purge"]:
        store().purge(task_id, entry("task.purge", task_id))
        remove_task_files(services().settings.upload_dir, task_id)
        return {"message": "Task deleted successfully", "task_id": task_id}
    return store().cancel(task_id, entry("task.cancel", task_id))


@bp.patch("/<task_id:task_id>")
@document(summary="Report on a task from an external processor", tags=("tasks",),
          body=PatchSchema, responses={200: EnvelopeSchema}, errors=(404, 409))
def patch(task_id: str):
    """An external processor reports status, progress, error or result."""
    body = patch_schema.load(parse_json_object(request.get_data(cache=False)))
    said = {k: body[k] for k in ("status", "progress", "error_message") if k in body}
    audit = entry("task.patch", task_id, **said, result="result" in body)
    return store().patch(task_id, status=body.get("status"), progress=body.get("progress"),
                         error_message=body.get("error_message"), result=body.get("result"),
                         has_result="result" in body, audit=audit)


@bp.get("/statistics")
@document(summary="Task statistics", tags=("tasks",), responses={200: StatisticsSchema})
def statistics():
    """Counts per status and state, success rate, mean processing time — O(1) Redis work."""
    return task_listing().statistics()


@bp.post("/<task_id:task_id>/retry")
@document(summary="Queue a finished task again", tags=("tasks",),
          responses={200: EnvelopeSchema}, errors=(404, 409))
def retry(task_id: str):
    """Queue a finished task again under its id, with attempts, progress and error reset."""
    return store().requeue(task_id, RETRYABLE_STATES, reset=True,
                           audit=entry("task.retry", task_id))


@bp.get("")
@document(summary="Queue depths and a page of tasks", tags=("tasks",), query=ListQuerySchema,
          responses={200: TaskPageSchema},
          description="Filters combine: every one given must hold (`state`, `status`, `type`, "
                      "`priority`; a state outside the given status matches nothing).")
def listing():
    """Queue depths, and one page of the tasks every given filter matches."""
    query = list_schema.load(request.args.to_dict())
    depths = task_listing().queue_depths()
    tasks, total = task_listing().page(
        filters=Filters(**query["filters"]),
        sort=query["sort"],
        descending=query["order"] == "desc",
        page=query["page"],
        page_size=query["page_size"],
    )
    return {
        "queue_depths": depths,
        "total_pending": sum(depths.values()),
        "tasks": tasks,
        "total": total,
        "page": query["page"],
        "page_size": query["page_size"],
        "pages": math.ceil(total / query["page_size"]),
    }
