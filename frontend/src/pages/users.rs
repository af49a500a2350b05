use crate::api::{self, ApiError};
use crate::app::Hydrated;
use crate::layout::{FieldBlock, LoadError, Loading, PageHeader, RequirePermission};
use crate::remote::Remote;
use crate::time::Utc;
use leptos::ev::SubmitEvent;
use leptos::html;
use leptos::prelude::*;
use leptos_meta::Title;
use shared::api::{CreateUserRequest, UserView};
use shared::role::{Permission, Role};

#[component]
pub fn UsersPage() -> impl IntoView {
    view! {
        <Title text="Users" />
        <RequirePermission permission=Permission::ManageUsers purpose="manage users">
            <Users />
        </RequirePermission>
    }
}

#[component]
fn Users() -> impl IntoView {
    let users = Remote::new(api::list_users);
    view! {
        <PageHeader
            title="Users"
            lede="The people who can sign in to this dashboard, and what their role lets them do."
        />
        <div class="columns">
            <section class="panel" aria-labelledby="users-title">
                <div class="panel-header">
                    <h2 id="users-title">"Accounts"</h2>
                </div>
                // A reload after a create keeps the table on screen.
                {move || match users.get() {
                    None => view! { <Loading label="Loading users…" /> }.into_any(),
                    Some(Ok(list)) => view! { <UsersTable users=list /> }.into_any(),
                    Some(Err(e)) => {
                        view! {
                            <LoadError
                                message=e.message()
                                retry=Callback::new(move |()| users.reload())
                            />
                        }
                            .into_any()
                    }
                }}
            </section>
            <CreateUser on_created=Callback::new(move |()| users.reload()) />
        </div>
    }
}

#[component]
fn UsersTable(users: Vec<UserView>) -> impl IntoView {
    let empty = users.is_empty();
    let rows = users
        .into_iter()
        .map(|user| {
            let created = Utc::from_millis(user.created_at_ms);
            let (status, status_class) = if user.disabled {
                ("Disabled", "status status-off")
            } else {
                ("Active", "status status-on")
            };
            view! {
                <tr>
                    <td>
                        <strong>{user.username}</strong>
                    </td>
                    <td>
                        <span class="role-badge">{user.role.as_str()}</span>
                    </td>
                    <td>
                        <span class=status_class>{status}</span>
                    </td>
                    <td class="nowrap">
                        <time datetime=created.iso()>{created.display()}</time>
                    </td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <div class="table-scroll">
            <table class="table" data-test="users-table">
                <thead>
                    <tr>
                        <th scope="col">"Username"</th>
                        <th scope="col">"Role"</th>
                        <th scope="col">"Status"</th>
                        <th scope="col">"Created"</th>
                    </tr>
                </thead>
                <tbody>
                    {empty
                        .then(|| {
                            view! {
                                <tr>
                                    <td colspan="4" class="table-empty" data-test="users-empty">
                                        "No users yet."
                                    </td>
                                </tr>
                            }
                        })}
                    {rows}
                </tbody>
            </table>
        </div>
    }
}

/// The fields of the create form that the server may blame for an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Username,
    Password,
    Role,
}

impl Field {
    fn from_api(field: &str) -> Option<Field> {
        match field {
            "username" => Some(Field::Username),
            "password" => Some(Field::Password),
            "role" => Some(Field::Role),
            _ => None,
        }
    }
}

/// Where an error from the create call belongs: beside a field, or above
/// the form.
fn place_error(error: &ApiError) -> (Option<Field>, String) {
    (error.field().and_then(Field::from_api), error.message())
}

/// A short description of what each role may do, for the role picker.
fn role_summary(role: Role) -> &'static str {
    match role {
        Role::Viewer => "read only",
        Role::Engineer => "edits, publishes low risk",
        Role::Approver => "approves others' requests",
        Role::Admin => "everything, users and tokens",
    }
}

#[component]
fn CreateUser(on_created: Callback<()>) -> impl IntoView {
    let hydrated = Hydrated::expect();
    let form = NodeRef::<html::Form>::new();
    let username = NodeRef::<html::Input>::new();
    let password = NodeRef::<html::Input>::new();
    let role = NodeRef::<html::Select>::new();

    // (field, message) of the last failure; `None` field means the form.
    let error = RwSignal::new(None::<(Option<Field>, String)>);
    let created = RwSignal::new(None::<String>);

    let create = Action::new_local(move |request: &CreateUserRequest| {
        let request = request.clone();
        async move {
            let outcome = api::create_user(&request).await;
            // Whoever left the page mid-request has nothing left to update.
            if error.is_disposed() {
                return;
            }
            match outcome {
                Ok(user) => {
                    created.set(Some(format!(
                        "Created {} with the role {}.",
                        user.username, user.role
                    )));
                    if let Some(form) = form.get_untracked() {
                        form.reset();
                    }
                    on_created.run(());
                }
                Err(e) => {
                    let (field, message) = place_error(&e);
                    error.set(Some((field, message)));
                    let target = match field {
                        Some(Field::Password) => password.get_untracked(),
                        Some(Field::Role) => None,
                        _ => username.get_untracked(),
                    };
                    if let Some(input) = target {
                        let _ = input.focus();
                    }
                }
            }
        }
    });
    let pending = create.pending();

    let on_submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        if pending.get_untracked() {
            return;
        }
        let Some(picked) = role
            .get_untracked()
            .and_then(|select| select.value().parse::<Role>().ok())
        else {
            error.set(Some((Some(Field::Role), "Choose a role.".to_owned())));
            return;
        };
        let request = CreateUserRequest {
            username: username
                .get_untracked()
                .map(|i| i.value())
                .unwrap_or_default(),
            password: password
                .get_untracked()
                .map(|i| i.value())
                .unwrap_or_default(),
            role: picked,
        };
        error.set(None);
        created.set(None);
        create.dispatch(request);
    };

    let field_error = move |field: Field| {
        error.with(|e| match e {
            Some((Some(f), message)) if *f == field => Some(message.clone()),
            _ => None,
        })
    };
    let form_error = move || {
        error.with(|e| match e {
            Some((None, message)) => Some(message.clone()),
            _ => None,
        })
    };

    view! {
        <section class="panel" aria-labelledby="create-user-title">
            <div class="panel-header">
                <h2 id="create-user-title">"Add a user"</h2>
            </div>
            // The server is the one judge of what a valid user is, so the
            // browser's own checks are off and its messages show instead.
            // Creating a user needs JavaScript (the API takes JSON), so the
            // button waits for hydration; `post` only makes sure that no
            // early submit could ever put a password into a URL.
            <form
                class="form"
                method="post"
                novalidate
                data-test="create-user-form"
                node_ref=form
                on:submit=on_submit
            >
                {move || {
                    form_error()
                        .map(|message| {
                            view! {
                                <p class="alert alert-error" role="alert" data-test="create-user-error">
                                    {message}
                                </p>
                            }
                        })
                }}
                {move || {
                    created
                        .get()
                        .map(|message| {
                            view! {
                                <p class="alert alert-success" role="status" data-test="create-user-created">
                                    {message}
                                </p>
                            }
                        })
                }}
                <FieldBlock
                    id="new-user-username"
                    label="Username"
                    hint="1 to 64 characters: letters, digits, and . _ - @"
                    error=Signal::derive(move || field_error(Field::Username))
                >
                    <input
                        id="new-user-username"
                        name="username"
                        type="text"
                        autocomplete="off"
                        autocapitalize="none"
                        spellcheck="false"
                        data-test="create-user-username"
                        aria-describedby="new-user-username-hint new-user-username-error"
                        aria-invalid=move || field_error(Field::Username).map(|_| "true")
                        node_ref=username
                    />
                </FieldBlock>
                <FieldBlock
                    id="new-user-password"
                    label="Password"
                    hint="At least 12 characters. Share it with the person privately."
                    error=Signal::derive(move || field_error(Field::Password))
                >
                    <input
                        id="new-user-password"
                        name="password"
                        type="password"
                        autocomplete="new-password"
                        data-test="create-user-password"
                        aria-describedby="new-user-password-hint new-user-password-error"
                        aria-invalid=move || field_error(Field::Password).map(|_| "true")
                        node_ref=password
                    />
                </FieldBlock>
                <FieldBlock
                    id="new-user-role"
                    label="Role"
                    hint="Give the least the person needs; an admin can change it later."
                    error=Signal::derive(move || field_error(Field::Role))
                >
                    <select
                        id="new-user-role"
                        name="role"
                        data-test="create-user-role"
                        aria-describedby="new-user-role-hint new-user-role-error"
                        aria-invalid=move || field_error(Field::Role).map(|_| "true")
                        node_ref=role
                    >
                        {Role::ALL
                            .into_iter()
                            .map(|r| {
                                view! {
                                    <option value=r.as_str() selected=r == Role::Viewer>
                                        {format!("{} — {}", r.as_str(), role_summary(r))}
                                    </option>
                                }
                            })
                            .collect_view()}
                    </select>
                </FieldBlock>
                <button
                    type="submit"
                    class="button button-primary"
                    data-test="create-user-submit"
                    disabled=move || pending.get() || !hydrated.get()
                    aria-busy=move || pending.get().then_some("true")
                >
                    {move || if pending.get() { "Creating…" } else { "Create user" }}
                </button>
            </form>
        </section>
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::api::ErrorDetail;

    fn rejected(field: Option<&str>, message: &str) -> ApiError {
        ApiError::Status {
            status: 422,
            detail: Some(ErrorDetail {
                code: "validation".into(),
                message: message.into(),
                field: field.map(Into::into),
                details: None,
            }),
            retry_after_secs: None,
        }
    }

    #[test]
    fn errors_go_beside_the_field_the_server_names() {
        assert_eq!(
            place_error(&rejected(Some("password"), "too short")),
            (Some(Field::Password), "Too short".to_owned())
        );
        assert_eq!(
            place_error(&rejected(Some("username"), "taken")).0,
            Some(Field::Username)
        );
        assert_eq!(
            place_error(&rejected(Some("role"), "no")).0,
            Some(Field::Role)
        );
    }

    #[test]
    fn errors_without_a_known_field_go_above_the_form() {
        assert_eq!(place_error(&rejected(None, "conflict")).0, None);
        assert_eq!(place_error(&rejected(Some("email"), "what")).0, None);
        assert_eq!(place_error(&ApiError::Network).0, None);
    }
}
