//! The frame around every signed-in page, and the small pieces pages share.

use crate::api;
use crate::components::firing_alerts::FiringAlerts;
use crate::remote::Remote;
use crate::session::Session;
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::{
    NavigateOptions,
    components::{A, Outlet, Redirect},
};
use shared::api::{InboxCount, Me};
use shared::role::{Permission, Role};

/// The header, navigation and page area of every page but `/login`.
///
/// Nothing below renders until the session is known, so a page never shows
/// for a moment to someone who may not see it.
#[component]
pub fn Layout() -> impl IntoView {
    let session = Session::expect();
    view! {
        <Suspense fallback=|| view! { <HeaderPlaceholder /> }>
            {move || Suspend::new(async move {
                match session.me().await {
                    Ok(Some(me)) => view! { <SignedIn me /> }.into_any(),
                    // The server redirects a page request without a session,
                    // so this is the browser after logout, or after the API
                    // reported that the session expired. Replace: Back must
                    // not return to a page that would only redirect again.
                    Ok(None) => {
                        view! {
                            <Redirect
                                path="/login"
                                options=NavigateOptions {
                                    replace: true,
                                    ..Default::default()
                                }
                            />
                        }
                            .into_any()
                    }
                    Err(error) => view! { <SessionUnknown error=error.to_string() /> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn SignedIn(me: Me) -> impl IntoView {
    let can_manage_users = me.role.allows(Permission::ManageUsers);
    let can_read_audit = me.role.allows(Permission::ReadAudit);
    let badge = me
        .role
        .allows(Permission::Approve)
        .then(InboxBadge::provide);
    let firing = FiringAlerts::provide();
    view! {
        <a class="skip-link" href="#main">
            "Skip to content"
        </a>
        <header class="topbar">
            <div class="topbar-inner">
                <a class="brand" href="/">
                    <span class="brand-mark" aria-hidden="true"></span>
                    "Ballast"
                </a>
                <MainNav badge firing can_manage_users can_read_audit />
                <div class="session">
                    <span class="current-user" data-test="current-user">
                        <span class="visually-hidden">"Signed in as "</span>
                        <span class="current-user-name">{me.username}</span>
                        " "
                        <span class="role-badge" title="Your role">
                            {me.role.as_str()}
                        </span>
                    </span>
                    <LogoutButton />
                </div>
            </div>
        </header>
        <main id="main" class="content" tabindex="-1">
            <Outlet />
        </main>
    }
}

/// The main navigation, by role. Its view type is erased: nested in the
/// header it made one type too deep for the server's compiler to lay out.
#[component]
fn MainNav(
    badge: Option<InboxBadge>,
    firing: FiringAlerts,
    can_manage_users: bool,
    can_read_audit: bool,
) -> impl IntoView {
    view! {
        <nav class="nav" aria-label="Main" data-test="nav">
            <ul>
                <li>
                    <A href="/" exact=true attr:data-test="nav-overview">
                        "Overview"
                    </A>
                </li>
                <li>
                    <A href="/services" attr:data-test="nav-services">
                        "Services"
                    </A>
                </li>
                <li>
                    <A href="/fleet" attr:data-test="nav-fleet">
                        "Fleet"
                    </A>
                </li>
                <li>
                    <A href="/runbooks" attr:data-test="nav-runbooks">
                        "Runbooks"
                    </A>
                </li>
                <AlertsLink firing />
                {badge.map(|badge| view! { <ApprovalsLink badge /> })}
                {can_manage_users
                    .then(|| {
                        view! {
                            <li>
                                <A href="/users" attr:data-test="nav-users">
                                    "Users"
                                </A>
                            </li>
                        }
                    })}
                {can_read_audit
                    .then(|| {
                        view! {
                            <li>
                                <A href="/audit" attr:data-test="nav-audit">
                                    "Audit log"
                                </A>
                            </li>
                        }
                    })}
            </ul>
        </nav>
    }
    .into_any()
}

/// How many decisions wait for the signed-in approver: the badge on the
/// Approvals link. The approvals page refreshes it after each decision.
#[derive(Clone, Copy)]
pub struct InboxBadge(Remote<InboxCount>);

impl InboxBadge {
    /// Starts counting, and provides the badge to the pages below.
    fn provide() -> Self {
        let count = Remote::new(api::inbox_count);
        // Requests arrive from other people; look again now and then.
        Effect::new(move |_| {
            if let Ok(handle) =
                set_interval_with_handle(move || count.reload(), std::time::Duration::from_secs(30))
            {
                on_cleanup(move || handle.clear());
            }
        });
        let badge = InboxBadge(count);
        provide_context(badge);
        badge
    }

    /// Counts again, if the navigation shows a badge.
    pub fn refresh() {
        if let Some(badge) = use_context::<InboxBadge>() {
            badge.0.reload();
        }
    }
}

/// The Approvals link, with the number of decisions waiting.
#[component]
fn ApprovalsLink(badge: InboxBadge) -> impl IntoView {
    let waiting = Signal::derive(move || match badge.0.get() {
        Some(Ok(c)) => c.actions + c.publishes,
        _ => 0,
    });
    view! { <CountLink href="/approvals" label="Approvals" test="nav-approvals" count=waiting state="waiting" /> }
}

/// The Alerts link, with the number of alerts firing now.
#[component]
fn AlertsLink(firing: FiringAlerts) -> impl IntoView {
    let count = Signal::derive(move || firing.count() as u64);
    view! { <CountLink href="/alerts" label="Alerts" test="nav-alerts" count state="firing" bad=true /> }
}

/// A navigation link with a count beside it (none at 0); its accessible
/// name says the number in words. One component for every such link: each
/// view is code in the bundle every page downloads.
#[component]
fn CountLink(
    href: &'static str,
    label: &'static str,
    /// `data-test` of the link; its count's is this with `-count`.
    test: &'static str,
    count: Signal<u64>,
    /// What the counted things are doing: "waiting", "firing".
    state: &'static str,
    /// The count is of something broken, and looks it.
    #[prop(optional)]
    bad: bool,
) -> impl IntoView {
    let class = if bad {
        "nav-count nav-count-bad"
    } else {
        "nav-count"
    };
    view! {
        <li>
            <A
                href=href
                attr:data-test=test
                attr:aria-label=move || match count.get() {
                    0 => None,
                    n => Some(format!("{label}, {n} {state}")),
                }
            >
                {label}
                {move || match count.get() {
                    0 => None,
                    n => {
                        Some(
                            view! {
                                <span class=class aria-hidden="true" data-test=format!("{test}-count")>
                                    {n}
                                </span>
                            },
                        )
                    }
                }}
            </A>
        </li>
    }
}

/// Holds the header's height while the session loads (only ever seen when
/// the page was not rendered in one piece), so the content does not jump.
#[component]
fn HeaderPlaceholder() -> impl IntoView {
    view! {
        <header class="topbar" aria-hidden="true">
            <div class="topbar-inner">
                <span class="brand">
                    <span class="brand-mark"></span>
                    "Ballast"
                </span>
            </div>
        </header>
    }
}

#[component]
fn SessionUnknown(error: String) -> impl IntoView {
    let session = Session::expect();
    view! {
        <HeaderPlaceholder />
        <main id="main" class="content">
            <div class="notice notice-error" role="alert">
                <h1 class="notice-title">"Ballast could not check your session"</h1>
                <p>"The server did not answer as expected: " <code>{error}</code></p>
                <button type="button" class="button" on:click=move |_| session.reload()>
                    "Try again"
                </button>
            </div>
        </main>
    }
}

#[component]
fn LogoutButton() -> impl IntoView {
    let session = Session::expect();
    let pending = RwSignal::new(false);
    let failure = RwSignal::new(None::<String>);
    let on_click = move |_| {
        if pending.get_untracked() {
            return;
        }
        pending.set(true);
        failure.set(None);
        spawn_local(async move {
            match api::logout().await {
                // A 401 means the session was already gone: the same outcome.
                Err(e) if !e.is_unauthenticated() => {
                    failure.set(Some(e.message()));
                    pending.set(false);
                }
                // The layout answers a signed-out session by navigating to
                // /login, which unmounts this button. So this must be the
                // last reactive write here: an `Action` would record its
                // result afterwards, into a view that is being torn down.
                _ => session.signed_out(),
            }
        });
    };
    view! {
        // A plain button: logging out needs the API's JSON answer, so it
        // only works once the page is hydrated.
        <button
            type="button"
            class="button button-quiet"
            data-test="logout"
            disabled=move || pending.get()
            on:click=on_click
        >
            "Sign out"
        </button>
        {move || {
            failure
                .get()
                .map(|message| {
                    view! {
                        <span class="session-error" role="alert">
                            {message}
                        </span>
                    }
                })
        }}
    }
}

/// Renders `children` only for a role that `allows(permission)`, and an
/// explanation otherwise. The API enforces the same matrix; this only spares
/// people a page of errors.
#[component]
pub fn RequirePermission(
    permission: Permission,
    /// What the page is for, to finish "Your role does not allow you to …".
    purpose: &'static str,
    children: ChildrenFn,
) -> impl IntoView {
    let session = Session::expect();
    view! {
        <Suspense fallback=|| ()>
            {move || {
                let children = children.clone();
                Suspend::new(async move {
                    match session.me().await {
                        Ok(Some(me)) if me.role.allows(permission) => children().into_any(),
                        Ok(Some(me)) => view! { <Forbidden role=me.role purpose /> }.into_any(),
                        // The layout deals with no session or a failed check.
                        _ => ().into_any(),
                    }
                })
            }}
        </Suspense>
    }
}

#[component]
fn Forbidden(role: Role, purpose: &'static str) -> impl IntoView {
    view! {
        <div class="notice" role="note" data-test="forbidden">
            <h1 class="notice-title">"Not available to your role"</h1>
            <p>
                "You are signed in as " <strong>{role.as_str()}</strong> ", which does not allow you to "
                {purpose} ". An admin can change your role."
            </p>
            <p>
                <a href="/">"Back to the overview"</a>
            </p>
        </div>
    }
}

/// A page's title and a sentence on what it is for.
#[component]
pub fn PageHeader(
    title: &'static str,
    lede: &'static str,
    /// Buttons that act on the whole page.
    #[prop(optional)]
    children: Option<Children>,
) -> impl IntoView {
    view! {
        <div class="page-header">
            <div>
                <h1>{title}</h1>
                <p class="lede">{lede}</p>
            </div>
            {children.map(|actions| view! { <div class="page-actions">{actions()}</div> })}
        </div>
    }
}

/// The trail above a page's title, from a list page (the services list
/// unless `root` names another) down: the links between, each followed by
/// a slash.
#[component]
pub fn Crumbs(
    /// The list page the trail starts from: its address and its name.
    #[prop(default = ("/services", "Services"))]
    root: (&'static str, &'static str),
    #[prop(optional)] children: Option<Children>,
) -> impl IntoView {
    view! {
        <p class="breadcrumb">
            <a href=root.0>{root.1}</a>
            " / "
            {children.map(|c| view! { {c()} " / " })}
        </p>
    }
}

/// A titled panel of a page; the title names the region for screen
/// readers.
#[component]
pub fn Panel(
    /// The heading's id.
    id: &'static str,
    title: &'static str,
    /// A sentence under the title.
    #[prop(optional)]
    about: Option<&'static str>,
    #[prop(optional)] test: Option<&'static str>,
    children: Children,
) -> impl IntoView {
    view! {
        <section class="panel" aria-labelledby=id data-test=test>
            <div class="panel-header">
                <h2 id=id>{title}</h2>
                {about.map(|about| view! { <p class="muted">{about}</p> })}
            </div>
            {children()}
        </section>
    }
}

/// What came of the last attempt, in a live region: a success in green, a
/// failure in red, or nothing yet.
#[component]
pub fn Outcome(
    result: RwSignal<Option<Result<String, String>>>,
    #[prop(into)] test: String,
    /// One small line (in a table cell) rather than a banner.
    #[prop(optional)]
    small: bool,
) -> impl IntoView {
    let (ok, bad) = if small {
        ("ok small", "bad small")
    } else {
        ("alert alert-success", "alert alert-error")
    };
    view! {
        <div role="status" data-test=test>
            {move || {
                result
                    .get()
                    .map(|r| match r {
                        Ok(m) => view! { <p class=ok>{m}</p> },
                        Err(m) => view! { <p class=bad>{m}</p> },
                    })
            }}
        </div>
    }
}

/// A labelled line of text bound to `value`; `id` is also its `data-test`.
#[component]
pub fn TextInput(
    #[prop(into)] id: String,
    label: &'static str,
    value: RwSignal<String>,
    /// The label for screen readers only (a table cell says enough).
    #[prop(optional)]
    hidden_label: bool,
    #[prop(optional)] placeholder: &'static str,
    #[prop(optional)] class: &'static str,
) -> impl IntoView {
    view! {
        <label for=id.clone() class=hidden_label.then_some("visually-hidden")>
            {label}
        </label>
        <input
            id=id.clone()
            type="text"
            class=class
            autocomplete="off"
            placeholder=placeholder
            data-test=id
            prop:value=move || value.get()
            on:input=move |ev| value.set(event_target_value(&ev))
        />
    }
}

/// What a panel shows while its data loads.
#[component]
pub fn Loading(label: &'static str) -> impl IntoView {
    view! {
        <div class="loading" role="status">
            <span class="spinner" aria-hidden="true"></span>
            {label}
        </div>
    }
}

/// A failed load, with the way out.
#[component]
pub fn LoadError(message: String, retry: Callback<()>) -> impl IntoView {
    view! {
        <div class="notice notice-error" role="alert">
            <p>{message}</p>
            <button type="button" class="button" on:click=move |_| retry.run(())>
                "Try again"
            </button>
        </div>
    }
}

/// A label, the control, a hint, and the server's complaint about it, tied
/// together by ids so that screen readers announce all of them.
#[component]
pub fn FieldBlock(
    id: &'static str,
    label: &'static str,
    hint: &'static str,
    error: Signal<Option<String>>,
    children: Children,
) -> impl IntoView {
    view! {
        <div class="field">
            <label for=id>{label}</label>
            {children()}
            <p class="field-hint" id=format!("{id}-hint")>
                {hint}
            </p>
            <p class="field-error" id=format!("{id}-error") data-test=format!("{id}-error")>
                {move || error.get()}
            </p>
        </div>
    }
}
