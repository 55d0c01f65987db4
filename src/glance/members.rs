//! Image sharing (`/v2/images/{id}/members`): the owner adds projects to a `shared` image,
//! each member accepts or rejects it for its own listings.

use http::StatusCode;
use serde_json::{json, Value};

use super::image::{load_listed, load_visible, update};
use super::record::{now, Member};
use super::{json, read_json_body, ApiError, ApiResult, Caller, Glance};
use crate::request_body::RequestBody;

const STATUSES: &[&str] = &["pending", "accepted", "rejected"];

pub async fn add(g: &Glance, caller: &Caller, id: &str, incoming: RequestBody) -> ApiResult {
    let rec = load_visible(g, caller, id).await?;
    let body = read_json_body(incoming).await?;
    if !g.allowed("add_member", caller, &rec) || rec.visibility != "shared" {
        return Err(not_allowed_to_create(id));
    }
    let member = body
        .get("member")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| ApiError::bad("Member to be added not specified"))?;
    if member.is_empty() || member.chars().count() > 255 {
        return Err(ApiError::bad("Invalid member id"));
    }
    let quota = g.opts().image_member_quota;
    let image_id = rec.id.clone();
    let rec = update(g, &rec.id, move |r| {
        if r.visibility != "shared" {
            return Err(not_allowed_to_create(&r.id));
        }
        if r.members.iter().any(|m| m.member_id == member) {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!("Member {member} is duplicated for image {}", r.id),
            ));
        }
        if r.members.len() >= quota {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("Maximum number of image members exceeded ({quota})"),
            ));
        }
        let stamp = now();
        r.members.push(Member {
            member_id: member.clone(),
            status: "pending".into(),
            created_at: stamp.clone(),
            updated_at: stamp,
        });
        Ok(())
    })
    .await?;
    let m = rec.members.last().expect("just added");
    g.notifier.emit("image.member.create", m.to_json(&image_id));
    Ok(json(StatusCode::OK, &m.to_json(&image_id)))
}

fn not_allowed_to_create(id: &str) -> ApiError {
    ApiError::forbidden(format!("Not allowed to create members for image {id}."))
}

/// The owner (and admins) see every member; a member project sees its own entry.
pub async fn list(g: &Glance, caller: &Caller, id: &str) -> ApiResult {
    // As upstream: the image as the catalog shows it to the caller, then "shared only"
    // (403), then the policy (404 for an image get_image hides, e.g. from a system scope).
    let listed = load_listed(g, caller, id).await?;
    if listed.visibility != "shared" {
        return Err(ApiError::forbidden(format!(
            "Not allowed to list members for image {id}: Only shared images have members."
        )));
    }
    let rec = load_visible(g, caller, id).await?;
    g.enforce("get_members", caller, &rec)?;
    let owner_view = caller.is_admin() || rec.is_owner(caller);
    let members: Vec<Value> = rec
        .members
        .iter()
        .filter(|m| owner_view || Some(&m.member_id) == caller.project.as_ref())
        .map(|m| m.to_json(&rec.id))
        .collect();
    Ok(json(
        StatusCode::OK,
        &json!({"members": members, "schema": "/v2/schemas/members"}),
    ))
}

pub async fn show(g: &Glance, caller: &Caller, id: &str, member: &str) -> ApiResult {
    let rec = load_visible(g, caller, id).await?;
    if !g.allowed("get_member", caller, &rec) {
        return Err(member_not_found(id, member));
    }
    let owner_view = caller.is_admin() || rec.is_owner(caller);
    rec.members
        .iter()
        .find(|m| {
            m.member_id == member && (owner_view || Some(&m.member_id) == caller.project.as_ref())
        })
        .map(|m| json(StatusCode::OK, &m.to_json(&rec.id)))
        .ok_or_else(|| member_not_found(id, member))
}

fn member_not_found(id: &str, member: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("Member {member} not found for image {id}"),
    )
}

/// Only the member project itself (or an admin) sets its status.
pub async fn set_status(
    g: &Glance,
    caller: &Caller,
    id: &str,
    member: &str,
    incoming: RequestBody,
) -> ApiResult {
    let rec = load_visible(g, caller, id).await?;
    let body = read_json_body(incoming).await?;
    if rec.member(Some(member)).is_none() {
        return Err(member_not_found(id, member));
    }
    // modify_member's target is the membership being changed.
    let mut target = super::image_target(&rec, caller);
    target.insert("member_id", member.to_string());
    if !g.policy.allows("modify_member", caller, &target) {
        return Err(ApiError::forbidden(
            "You are not permitted to modify 'status' on this image member.",
        ));
    }
    let status = body
        .get("status")
        .and_then(Value::as_str)
        .filter(|s| STATUSES.contains(s))
        .map(str::to_string)
        .ok_or_else(|| {
            ApiError::bad(format!(
                "Provided object does not match schema 'member': status must be one of {STATUSES:?}"
            ))
        })?;
    let member_id = member.to_string();
    let image_id = rec.id.clone();
    let rec = update(g, &rec.id, move |r| {
        let m = r
            .members
            .iter_mut()
            .find(|m| m.member_id == member_id)
            .ok_or_else(|| member_not_found(&r.id, &member_id))?;
        m.status = status.clone();
        m.updated_at = now();
        Ok(())
    })
    .await?;
    let m = rec
        .member(Some(member))
        .ok_or_else(|| member_not_found(&image_id, member))?;
    g.notifier.emit("image.member.update", m.to_json(&image_id));
    Ok(json(StatusCode::OK, &m.to_json(&image_id)))
}

/// Only the owner (or an admin) removes a member.
pub async fn delete(g: &Glance, caller: &Caller, id: &str, member: &str) -> ApiResult {
    let rec = load_visible(g, caller, id).await?;
    if rec.member(Some(member)).is_none() {
        return Err(member_not_found(id, member));
    }
    if !g.allowed("delete_member", caller, &rec) {
        return Err(ApiError::forbidden(format!(
            "You cannot delete image member for {id}"
        )));
    }
    let member_id = member.to_string();
    update(g, &rec.id, move |r| {
        let before = r.members.len();
        r.members.retain(|m| m.member_id != member_id);
        if r.members.len() == before {
            return Err(member_not_found(&r.id, &member_id));
        }
        Ok(())
    })
    .await?;
    g.notifier.emit(
        "image.member.delete",
        json!({"image_id": rec.id, "member_id": member}),
    );
    super::no_content()
}
