use crate::api::{self, ApiError};
use crate::app::Hydrated;
use crate::components::instances_table::version_label;
use crate::layout::{FieldBlock, LoadError, Loading, PageHeader};
use crate::remote::Remote;
use crate::session::Session;
use leptos::ev::SubmitEvent;
use leptos::html;
use leptos::prelude::*;
use leptos_meta::Title;
use shared::api::{CreateServiceRequest, ServiceView};
use shared::role::Permission;

/// Every registered service, with what its instances should run, and (for
/// people who may edit) the form that registers another.
#[component]
pub fn ServicesPage() -> impl IntoView {
    let services = Remote::new(api::list_services);
    let session = Session::expect();
    view! {
        <Title text="Services" />
        <PageHeader
            title="Services"
            lede="Each service in each environment has one policy. Open one to edit its policy, see its versions and check which instances run what."
        />
        <div class="columns">
            <section class="panel" aria-labelledby="services-title">
                <div class="panel-header">
                    <h2 id="services-title">"Registered services"</h2>
                </div>
                {move || match services.get() {
                    None => view! { <Loading label="Loading services…" /> }.into_any(),
                    Some(Ok(list)) => view! { <ServicesTable services=list /> }.into_any(),
                    Some(Err(e)) => {
                        view! {
                            <LoadError
                                message=e.message()
                                retry=Callback::new(move |()| services.reload())
                            />
                        }
                            .into_any()
                    }
                }}
            </section>
            <Suspense fallback=|| ()>
                {move || Suspend::new(async move {
                    let can_edit = matches!(
                        session.me().await, Ok(Some(me)) if me.role.allows(Permission::Edit)
                    );
                    can_edit
                        .then(|| {
                            view! {
                                <RegisterService on_created=Callback::new(move |()| {
                                    services.reload()
                                }) />
                            }
                        })
                })}
            </Suspense>
        </div>
    }
}

#[component]
fn ServicesTable(services: Vec<ServiceView>) -> impl IntoView {
    if services.is_empty() {
        return view! {
            <div class="empty-state empty-state-flat" data-test="services-empty">
                <div class="empty-state-icon" aria-hidden="true"></div>
                <h2>"No services yet."</h2>
                <p>
                    "Register a service and an environment to give it a policy. Its agent then fetches that policy with a service token for the same pair."
                </p>
            </div>
        }
            .into_any();
    }
    let rows = services
        .into_iter()
        .map(|s| {
            let href = format!(
                "/services/{}/{}",
                shared::paths::segment(&s.name),
                shared::paths::segment(&s.environment)
            );
            let canary = match (s.rollout.canary_version, s.rollout.canary_percent) {
                (Some(v), Some(p)) => format!("v{v} on {p} %"),
                (Some(v), None) => format!("v{v}"),
                _ => "—".to_owned(),
            };
            let test = format!("service-row-{}", s.name);
            view! {
                <tr data-test=test>
                    <td>
                        <a href=href>
                            <strong>{s.name}</strong>
                        </a>
                    </td>
                    <td>
                        <span class="env-badge">{s.environment}</span>
                    </td>
                    <td class="wrap">{s.owner}</td>
                    <td class="num">{version_label(s.rollout.active_version)}</td>
                    <td class="num">{canary}</td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <div class="table-scroll">
            <table class="table" data-test="services-table">
                <thead>
                    <tr>
                        <th scope="col">"Service"</th>
                        <th scope="col">"Environment"</th>
                        <th scope="col">"Owner"</th>
                        <th scope="col" class="num">"Active"</th>
                        <th scope="col" class="num">"Canary"</th>
                    </tr>
                </thead>
                <tbody>{rows}</tbody>
            </table>
        </div>
    }
    .into_any()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Name,
    Environment,
    Owner,
}

fn place_error(error: &ApiError) -> (Option<Field>, String) {
    let field = match error.field() {
        Some("name") => Some(Field::Name),
        Some("environment") => Some(Field::Environment),
        Some("owner") => Some(Field::Owner),
        _ => None,
    };
    (field, error.message())
}

#[component]
fn RegisterService(on_created: Callback<()>) -> impl IntoView {
    let hydrated = Hydrated::expect();
    let form = NodeRef::<html::Form>::new();
    let name = NodeRef::<html::Input>::new();
    let environment = NodeRef::<html::Input>::new();
    let owner = NodeRef::<html::Input>::new();
    let error = RwSignal::new(None::<(Option<Field>, String)>);
    let created = RwSignal::new(None::<(String, String)>);

    let create = Action::new_local(move |request: &CreateServiceRequest| {
        let request = request.clone();
        async move {
            let outcome = api::create_service(&request).await;
            if error.is_disposed() {
                return;
            }
            match outcome {
                Ok(service) => {
                    created.set(Some((service.name, service.environment)));
                    if let Some(form) = form.get_untracked() {
                        form.reset();
                    }
                    on_created.run(());
                }
                Err(e) => {
                    let (field, message) = place_error(&e);
                    error.set(Some((field, message)));
                    let target = match field {
                        Some(Field::Environment) => environment.get_untracked(),
                        Some(Field::Owner) => owner.get_untracked(),
                        _ => name.get_untracked(),
                    };
                    if let Some(input) = target {
                        let _ = input.focus();
                    }
                }
            }
        }
    });
    let pending = create.pending();
    let value = |node: NodeRef<html::Input>| {
        node.get_untracked()
            .map(|i| i.value().trim().to_owned())
            .unwrap_or_default()
    };
    let on_submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        if pending.get_untracked() {
            return;
        }
        error.set(None);
        created.set(None);
        create.dispatch(CreateServiceRequest {
            name: value(name),
            environment: value(environment),
            owner: value(owner),
        });
    };
    let field_error = move |field: Field| {
        error.with(|e| match e {
            Some((Some(f), message)) if *f == field => Some(message.clone()),
            _ => None,
        })
    };
    view! {
        <section class="panel" aria-labelledby="register-title">
            <div class="panel-header">
                <h2 id="register-title">"Register a service"</h2>
            </div>
            <form
                class="form"
                method="post"
                novalidate
                data-test="register-service-form"
                node_ref=form
                on:submit=on_submit
            >
                {move || {
                    error
                        .with(|e| match e {
                            Some((None, message)) => Some(message.clone()),
                            _ => None,
                        })
                        .map(|message| {
                            view! {
                                <p class="alert alert-error" role="alert" data-test="register-error">
                                    {message}
                                </p>
                            }
                        })
                }}
                {move || {
                    created
                        .get()
                        .map(|(name, env)| {
                            let href = format!(
                                "/services/{}/{}",
                                shared::paths::segment(&name),
                                shared::paths::segment(&env),
                            );
                            view! {
                                <p class="alert alert-success" role="status" data-test="register-created">
                                    "Registered " <a href=href>{format!("{name} in {env}")}</a>
                                    ". Open it to write its policy."
                                </p>
                            }
                        })
                }}
                <FieldBlock
                    id="new-service-name"
                    label="Name"
                    hint="Lower-case letters, digits, - _ and ."
                    error=Signal::derive(move || field_error(Field::Name))
                >
                    <input
                        id="new-service-name"
                        name="name"
                        type="text"
                        autocomplete="off"
                        autocapitalize="none"
                        spellcheck="false"
                        data-test="register-name"
                        aria-describedby="new-service-name-hint new-service-name-error"
                        aria-invalid=move || field_error(Field::Name).map(|_| "true")
                        node_ref=name
                    />
                </FieldBlock>
                <FieldBlock
                    id="new-service-environment"
                    label="Environment"
                    hint="Such as prod or staging; same alphabet."
                    error=Signal::derive(move || field_error(Field::Environment))
                >
                    <input
                        id="new-service-environment"
                        name="environment"
                        type="text"
                        autocomplete="off"
                        autocapitalize="none"
                        spellcheck="false"
                        data-test="register-environment"
                        aria-describedby="new-service-environment-hint new-service-environment-error"
                        aria-invalid=move || field_error(Field::Environment).map(|_| "true")
                        node_ref=environment
                    />
                </FieldBlock>
                <FieldBlock
                    id="new-service-owner"
                    label="Owner"
                    hint="The team or person answerable for it."
                    error=Signal::derive(move || field_error(Field::Owner))
                >
                    <input
                        id="new-service-owner"
                        name="owner"
                        type="text"
                        autocomplete="off"
                        data-test="register-owner"
                        aria-describedby="new-service-owner-hint new-service-owner-error"
                        aria-invalid=move || field_error(Field::Owner).map(|_| "true")
                        node_ref=owner
                    />
                </FieldBlock>
                <button
                    type="submit"
                    class="button button-primary"
                    data-test="register-submit"
                    disabled=move || pending.get() || !hydrated.get()
                    aria-busy=move || pending.get().then_some("true")
                >
                    {move || if pending.get() { "Registering…" } else { "Register service" }}
                </button>
            </form>
        </section>
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::api::ErrorDetail;

    #[test]
    fn server_errors_land_beside_their_field() {
        let e = ApiError::Status {
            status: 409,
            detail: Some(ErrorDetail {
                code: "conflict".into(),
                message: "x already exists in prod".into(),
                field: Some("name".into()),
                details: None,
            }),
            retry_after_secs: None,
        };
        assert_eq!(place_error(&e).0, Some(Field::Name));
        assert_eq!(place_error(&ApiError::Network).0, None);
        assert_eq!(version_label(Some(3)), "v3");
        assert_eq!(version_label(None), "—");
    }
}
