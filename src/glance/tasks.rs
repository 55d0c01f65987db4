//! Tasks: the record of every import (`api_image_import`, shown under
//! `/v2/images/{id}/tasks`) and the legacy admin-only `/v2/tasks` API, whose `import` type
//! creates an image and web-downloads into it.

use std::sync::Arc;

use crate::request_body::RequestBody;
use glint_storage::Catalog;
use http::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::record::{now, valid_uuid};
use super::{json, read_json_body, uuid_v4, ApiError, ApiResult, Caller, Glance};

const TYPES: &[&str] = &["import", "api_image_import", "location_import"];

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TaskRecord {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// pending → processing → success | failure
    pub status: String,
    pub owner: Option<String>,
    pub image_id: Option<String>,
    pub request_id: Option<String>,
    pub user_id: Option<String>,
    pub input: Value,
    pub result: Option<Value>,
    pub message: String,
    pub expires_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// Cluster mode: the node running the task, so that another node fails it once that
    /// node is gone (glance/recovery.rs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<u64>,
}

impl TaskRecord {
    pub fn new(kind: &str, caller: &Caller, image_id: Option<String>, input: Value) -> TaskRecord {
        let stamp = now();
        TaskRecord {
            id: uuid_v4(),
            kind: kind.into(),
            status: "pending".into(),
            owner: caller.project.clone(),
            image_id,
            request_id: Some(caller.request_id.clone()),
            user_id: caller.user.clone(),
            input,
            result: None,
            worker: None,
            message: String::new(),
            expires_at: None,
            created_at: stamp.clone(),
            updated_at: stamp,
        }
    }

    /// As `/v2/images/{id}/tasks` shows it.
    fn image_view(&self) -> Value {
        json!({
            "id": self.id, "type": self.kind, "status": self.status, "owner": self.owner,
            "expires_at": self.expires_at, "created_at": self.created_at,
            "updated_at": self.updated_at, "deleted_at": null, "deleted": false,
            "image_id": self.image_id, "request_id": self.request_id, "user_id": self.user_id,
            "input": self.input, "result": self.result, "message": self.message,
        })
    }

    /// As `GET /v2/tasks/{id}` shows it.
    fn detail_view(&self) -> Value {
        json!({
            "id": self.id, "type": self.kind, "status": self.status, "owner": self.owner,
            "input": self.input, "result": self.result, "message": self.message,
            "expires_at": self.expires_at, "created_at": self.created_at,
            "updated_at": self.updated_at, "self": format!("/v2/tasks/{}", self.id),
            "schema": "/v2/schemas/task",
        })
    }

    /// As `GET /v2/tasks` lists it (no input, result or message).
    fn summary_view(&self) -> Value {
        json!({
            "id": self.id, "type": self.kind, "status": self.status, "owner": self.owner,
            "created_at": self.created_at, "updated_at": self.updated_at,
            "self": format!("/v2/tasks/{}", self.id), "schema": "/v2/schemas/task",
            "expires_at": self.expires_at,
        })
    }
}

pub async fn save(g: &Glance, task: &TaskRecord) -> Result<(), ApiError> {
    let key = task.id.clone();
    let value = serde_json::to_vec(task).expect("serializable");
    g.store
        .transact(move |tx| tx.put(Catalog::Tasks, key.as_bytes(), &value))
        .await?;
    Ok(())
}

/// Moves a task along: `processing`, or finished with `success`/`failure` (which starts
/// its time to live).
pub async fn set_status(
    g: &Glance,
    task: &mut TaskRecord,
    status: &str,
    message: impl Into<String>,
) -> Result<(), ApiError> {
    task.set_status(status, message, g.opts().task_time_to_live);
    save(g, task).await
}

impl TaskRecord {
    /// Moves the task to `status`; a finished one (`success`/`failure`) starts its time to
    /// live of `ttl_hours`.
    pub fn set_status(&mut self, status: &str, message: impl Into<String>, ttl_hours: u64) {
        self.status = status.into();
        self.message = message.into();
        self.updated_at = now();
        if matches!(status, "success" | "failure") {
            let ttl = time::Duration::hours(ttl_hours as i64);
            self.expires_at = (time::OffsetDateTime::now_utc() + ttl)
                .format(time::macros::format_description!(
                    "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
                ))
                .ok();
            if status == "success" {
                self.result = Some(json!({"image_id": self.image_id}));
            }
        }
    }

    /// Whether the task has not finished.
    pub fn is_running(&self) -> bool {
        matches!(self.status.as_str(), "pending" | "processing")
    }
}

async fn all(g: &Glance) -> Result<Vec<TaskRecord>, ApiError> {
    let rows = g
        .store
        .scan(Catalog::Tasks, Vec::new(), None, usize::MAX)
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(_, v)| serde_json::from_slice::<TaskRecord>(&v).ok())
        .collect())
}

/// `GET /v2/images/{id}/tasks` (the caller may see the image: checked by the router).
pub async fn of_image(g: &Glance, image_id: &str) -> ApiResult {
    let mut tasks: Vec<TaskRecord> = all(g)
        .await?
        .into_iter()
        .filter(|t| t.image_id.as_deref() == Some(image_id))
        .collect();
    tasks.sort_by(|a, b| b.created_at.cmp(&a.created_at));
    let list: Vec<Value> = tasks.iter().map(TaskRecord::image_view).collect();
    Ok(json(StatusCode::OK, &json!({ "tasks": list })))
}

/// `/v2/tasks[/{id}]`: admin only (`tasks_api_access`).
pub async fn route(
    g: &Arc<Glance>,
    caller: &Caller,
    method: &Method,
    rest: &[&str],
    query: &str,
    incoming: RequestBody,
) -> ApiResult {
    g.enforce_own("tasks_api_access", caller)?;
    match (method, rest) {
        (&Method::GET, []) => list(g, query).await,
        (&Method::POST, []) => create(g, caller, incoming).await,
        (_, []) => Err(ApiError::method_not_allowed("GET, POST")),
        (&Method::GET, [id]) => {
            let task = load(g, id).await?;
            Ok(json(StatusCode::OK, &task.detail_view()))
        }
        (_, [_]) => Err(ApiError::method_not_allowed("GET")),
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "The resource could not be found.",
        )),
    }
}

async fn load(g: &Glance, id: &str) -> Result<TaskRecord, ApiError> {
    let missing = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("Task with identifier {id} not found"),
        )
    };
    if !valid_uuid(id) {
        return Err(missing());
    }
    g.store
        .get(Catalog::Tasks, id.as_bytes().to_vec())
        .await?
        .and_then(|v| serde_json::from_slice(&v).ok())
        .ok_or_else(missing)
}

async fn list(g: &Glance, query: &str) -> ApiResult {
    let params = crate::http_util::query_params(query);
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let limit = match get("limit") {
        None => g.opts().limit_param_default,
        Some(l) => l
            .parse::<usize>()
            .map_err(|_| ApiError::bad("limit param must be a positive integer"))?
            .min(g.opts().api_limit_max),
    };
    let sort_key = get("sort_key").unwrap_or("created_at");
    if !["id", "type", "status", "created_at", "updated_at"].contains(&sort_key) {
        return Err(ApiError::bad(format!("Invalid sort key: {sort_key}.")));
    }
    let desc = match get("sort_dir").unwrap_or("desc") {
        "asc" => false,
        "desc" => true,
        d => return Err(ApiError::bad(format!("Invalid sort direction: {d}"))),
    };
    if let Some(s) = get("status") {
        if !["pending", "processing", "success", "failure"].contains(&s) {
            return Err(ApiError::bad(format!("Invalid status value: {s}")));
        }
    }
    if let Some(t) = get("type") {
        if !TYPES.contains(&t) {
            return Err(ApiError::bad(format!("Invalid type value: {t}")));
        }
    }
    let mut tasks: Vec<TaskRecord> = all(g)
        .await?
        .into_iter()
        .filter(|t| get("status").is_none_or(|s| t.status == s))
        .filter(|t| get("type").is_none_or(|k| t.kind == k))
        .collect();
    let field = |t: &TaskRecord| -> String {
        match sort_key {
            "id" => t.id.clone(),
            "type" => t.kind.clone(),
            "status" => t.status.clone(),
            "updated_at" => t.updated_at.clone(),
            _ => t.created_at.clone(),
        }
    };
    tasks.sort_by(|a, b| {
        let o = field(a).cmp(&field(b)).then(a.id.cmp(&b.id));
        if desc {
            o.reverse()
        } else {
            o
        }
    });
    if let Some(m) = get("marker") {
        let pos = tasks
            .iter()
            .position(|t| t.id == m)
            .ok_or_else(|| ApiError::bad(format!("marker {m} could not be found")))?;
        tasks.drain(..=pos);
    }
    let full = limit > 0 && tasks.len() >= limit;
    tasks.truncate(limit);
    let mut out = json!({
        "tasks": tasks.iter().map(TaskRecord::summary_view).collect::<Vec<_>>(),
        "first": "/v2/tasks",
        "schema": "/v2/schemas/tasks",
    });
    if full {
        if let Some(last) = tasks.last() {
            out["next"] = json!(format!("/v2/tasks?marker={}", last.id));
        }
    }
    Ok(json(StatusCode::OK, &out))
}

/// `POST /v2/tasks` `{"type": "import", "input": {"import_from", "import_from_format",
/// "image_properties"}}`: creates the image and web-downloads into it.
async fn create(g: &Arc<Glance>, caller: &Caller, incoming: RequestBody) -> ApiResult {
    let body = read_json_body(incoming).await?;
    let kind = body.get("type").and_then(Value::as_str).unwrap_or("");
    if !TYPES.contains(&kind) {
        return Err(ApiError::bad(format!(
            "Provided object does not match schema 'task': '{kind}' is not one of {TYPES:?}"
        )));
    }
    let input = body.get("input").cloned().unwrap_or(Value::Null);
    if kind != "import" {
        return Err(ApiError::bad(format!(
            "Task type {kind} cannot be created through the tasks API"
        )));
    }
    let from = input
        .get("import_from")
        .and_then(Value::as_str)
        .unwrap_or("");
    if super::uri_filter::check(from, &g.opts().import_filter)
        .await
        .is_none()
    {
        return Err(ApiError::bad(format!(
            "URI for legacy import task does not pass filtering: {from}"
        )));
    }
    let props = input
        .get("image_properties")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let image = super::image::create_record(g, caller, &props).await?;
    let mut task = TaskRecord::new("import", caller, Some(image.id.clone()), input.clone());
    task.worker = g.store.node_id().await?;
    save(g, &task).await?;
    let g2 = g.clone();
    let uri = from.to_string();
    let view = task.detail_view();
    g.background.spawn(async move {
        let _ = set_status(&g2, &mut task, "processing", "").await;
        let outcome = tokio::select! {
            r = super::import::legacy_web_download(&g2, &image.id, &uri) => r,
            _ = g2.background.stopping() => {
                super::import::fail(&g2, &image.id).await;
                Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The import was interrupted: the server is stopping.",
                ))
            }
        };
        let _ = match outcome {
            Ok(()) => set_status(&g2, &mut task, "success", "").await,
            Err(e) => set_status(&g2, &mut task, "failure", e.message).await,
        };
    });
    Ok(json(StatusCode::CREATED, &view))
}
