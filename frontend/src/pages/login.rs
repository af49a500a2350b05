use crate::api::{self, ApiError};
use crate::session::Session;
use leptos::ev::SubmitEvent;
use leptos::html;
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_meta::Title;
use leptos_router::{
    NavigateOptions,
    hooks::{use_navigate, use_query_map},
};
use shared::api::LoginRequest;

const INVALID: &str = "Incorrect username or password.";
const THROTTLED: &str = "Too many sign-in attempts. Wait a minute, then try again.";

/// The message for the `?error=` code that the server's redirect carries
/// after a sign-in posted without JavaScript.
fn message_for_redirect(code: &str) -> &'static str {
    match code {
        "invalid" => INVALID,
        "throttled" => THROTTLED,
        _ => "Sign-in failed. Try again.",
    }
}

/// The message for a failed sign-in through the API. The server's messages
/// for these two codes are written for API clients; people get the same
/// words as after a plain form post, plus the wait when the server says it.
fn message_for_api_error(error: &ApiError) -> String {
    match (error.status(), error.code()) {
        (_, Some("invalid_credentials")) | (Some(401), None) => INVALID.to_owned(),
        (_, Some("throttled")) | (Some(429), None) => match error.retry_after_secs() {
            Some(secs) => format!(
                "Too many sign-in attempts. Try again in {}.",
                human_wait(secs)
            ),
            None => THROTTLED.to_owned(),
        },
        _ => error.message(),
    }
}

/// A wait in words, rounded up: nobody should retry a second too early.
fn human_wait(secs: u64) -> String {
    match secs {
        0 | 1 => "a second".to_owned(),
        2..=59 => format!("{secs} seconds"),
        _ => match secs.div_ceil(60) {
            1 => "a minute".to_owned(),
            minutes => format!("{minutes} minutes"),
        },
    }
}

/// Sign-in. Works before (and without) the wasm as a plain form post that
/// the server answers with a redirect; once hydrated, it signs in through
/// the JSON API and moves on without reloading the page.
#[component]
pub fn LoginPage() -> impl IntoView {
    let session = Session::expect();
    let navigate = use_navigate();
    let redirect_error = use_query_map()
        .with_untracked(|query| query.get("error"))
        .map(|code| message_for_redirect(&code).to_owned());
    let error = RwSignal::new(redirect_error);

    let username = NodeRef::<html::Input>::new();
    let password = NodeRef::<html::Input>::new();

    let pending = RwSignal::new(false);

    // Read the fields from the DOM rather than from signals: whatever was
    // typed before hydration is in the inputs, and only there.
    let on_submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        if pending.get_untracked() {
            return;
        }
        let value = |input: NodeRef<html::Input>| {
            input.get_untracked().map(|i| i.value()).unwrap_or_default()
        };
        let request = LoginRequest {
            username: value(username),
            password: value(password),
        };
        if request.username.is_empty() || request.password.is_empty() {
            error.set(Some("Enter your username and password.".to_owned()));
            return;
        }
        error.set(None);
        pending.set(true);
        let navigate = navigate.clone();
        spawn_local(async move {
            match api::login(&request).await {
                Ok(response) => {
                    session.signed_in(response.user);
                    // Last, because it unmounts this page. Replace: Back
                    // from the overview should not land on a sign-in form
                    // for a session that exists.
                    navigate(
                        "/",
                        NavigateOptions {
                            replace: true,
                            ..Default::default()
                        },
                    );
                }
                Err(e) => {
                    error.set(Some(message_for_api_error(&e)));
                    pending.set(false);
                    if let Some(input) = password.get_untracked() {
                        input.set_value("");
                        let _ = input.focus();
                    }
                }
            }
        });
    };

    view! {
        <Title text="Sign in" />
        <main id="main" class="centered-page">
            <div class="card login-card">
                <div class="brand brand-large">
                    <span class="brand-mark" aria-hidden="true"></span>
                    "Ballast"
                </div>
                <h1>"Sign in"</h1>
                <p class="lede">"The reliability control plane for your AI services."</p>
                <form
                    class="form"
                    method="post"
                    action=api::LOGIN
                    data-test="login-form"
                    on:submit=on_submit
                >
                    // Reserved space, so an error does not push the form down.
                    <div class="form-feedback">
                        {move || {
                            error
                                .get()
                                .map(|message| {
                                    view! {
                                        <p class="alert alert-error" role="alert" data-test="login-error">
                                            {message}
                                        </p>
                                    }
                                })
                        }}
                    </div>
                    <div class="field">
                        <label for="login-username">"Username"</label>
                        <input
                            id="login-username"
                            name="username"
                            type="text"
                            autocomplete="username"
                            autocapitalize="none"
                            spellcheck="false"
                            required
                            autofocus
                            data-test="login-username"
                            node_ref=username
                        />
                    </div>
                    <div class="field">
                        <label for="login-password">"Password"</label>
                        <input
                            id="login-password"
                            name="password"
                            type="password"
                            autocomplete="current-password"
                            required
                            data-test="login-password"
                            node_ref=password
                        />
                    </div>
                    <button
                        type="submit"
                        class="button button-primary button-block"
                        data-test="login-submit"
                        disabled=move || pending.get()
                        aria-busy=move || pending.get().then_some("true")
                    >
                        {move || if pending.get() { "Signing in…" } else { "Sign in" }}
                    </button>
                </form>
            </div>
        </main>
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::api::ErrorDetail;

    fn api_error(status: u16, code: Option<&str>, message: &str) -> ApiError {
        ApiError::Status {
            status,
            detail: code.map(|code| ErrorDetail {
                code: code.into(),
                message: message.into(),
                field: None,
                details: None,
            }),
            retry_after_secs: None,
        }
    }

    #[test]
    fn throttling_says_how_long_to_wait_when_the_server_does() {
        let throttled = |secs| ApiError::Status {
            status: 429,
            detail: None,
            retry_after_secs: secs,
        };
        assert_eq!(
            message_for_api_error(&throttled(Some(30))),
            "Too many sign-in attempts. Try again in 30 seconds."
        );
        assert_eq!(
            message_for_api_error(&throttled(Some(61))),
            "Too many sign-in attempts. Try again in 2 minutes."
        );
        assert_eq!(
            message_for_api_error(&throttled(Some(60))),
            "Too many sign-in attempts. Try again in a minute."
        );
        assert_eq!(message_for_api_error(&throttled(None)), THROTTLED);
        assert_eq!(human_wait(1), "a second");
    }

    #[test]
    fn the_form_post_and_the_api_say_the_same_thing() {
        assert_eq!(
            message_for_api_error(&api_error(401, Some("invalid_credentials"), "bad")),
            message_for_redirect("invalid")
        );
        assert_eq!(
            message_for_api_error(&api_error(429, Some("throttled"), "slow down")),
            message_for_redirect("throttled")
        );
        assert_eq!(
            message_for_api_error(&api_error(401, None, "")),
            message_for_redirect("invalid")
        );
    }

    #[test]
    fn other_failures_keep_their_own_message() {
        assert_eq!(
            message_for_api_error(&api_error(400, Some("validation"), "username is required")),
            "Username is required"
        );
        assert_eq!(
            message_for_api_error(&ApiError::Network),
            ApiError::Network.message()
        );
        assert_ne!(message_for_redirect("something-else"), INVALID);
    }
}
