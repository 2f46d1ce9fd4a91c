//! The GenAI semantic conventions' names for what the gateway sees — pure
//! functions of the request and the upstream, table-tested: the operation
//! (`gen_ai.operation.name`) of an API path, the provider
//! (`gen_ai.provider.name`) of an upstream host, and a span's name.

use http::Method;

use crate::inspect::Endpoint;

/// `gen_ai.operation.name` for a request: `chat` for chat completions and
/// for the Responses API (it generates a chat answer; the conventions name
/// no `responses` operation), `text_completion` for legacy completions,
/// `embeddings`. Other routes — images, audio, videos, files, polls (a
/// `GET`) — are not inference calls the conventions name: `None`.
pub fn operation(method: &Method, endpoint: Endpoint) -> Option<&'static str> {
    if method != Method::POST {
        return None;
    }
    match endpoint {
        Endpoint::ChatCompletions | Endpoint::Responses => Some("chat"),
        Endpoint::Completions => Some("text_completion"),
        Endpoint::Embeddings => Some("embeddings"),
        Endpoint::ImagesGenerations
        | Endpoint::Videos
        | Endpoint::Transcriptions
        | Endpoint::Other => None,
    }
}

/// `gen_ai.provider.name` for an upstream host, when the host says who it
/// is; an OpenAI-compatible upstream of unknown make (a gateway, a local
/// server) has none.
pub fn provider(host: &str) -> Option<&'static str> {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let is = |domain: &str| host == domain || host.ends_with(&format!(".{domain}"));
    Some(match () {
        () if is("api.openai.com") => "openai",
        () if is("openai.azure.com") => "azure.ai.openai",
        () if is("services.ai.azure.com") || is("inference.ai.azure.com") => "azure.ai.inference",
        () if is("api.anthropic.com") => "anthropic",
        () if is("generativelanguage.googleapis.com") => "gcp.gemini",
        // Vertex AI's regional hosts: `us-central1-aiplatform.googleapis.com`.
        () if host.ends_with("aiplatform.googleapis.com") => "gcp.vertex_ai",
        () if host.starts_with("bedrock-runtime.") && is("amazonaws.com") => "aws.bedrock",
        () if is("api.groq.com") => "groq",
        () if is("api.deepseek.com") => "deepseek",
        () if is("api.mistral.ai") => "mistral_ai",
        () if is("api.x.ai") => "x_ai",
        () if is("api.perplexity.ai") => "perplexity",
        () if is("api.cohere.com") || is("api.cohere.ai") => "cohere",
        () => return None,
    })
}

/// A span's name: `{operation} {model}` for an inference call (the GenAI
/// conventions'), else `{METHOD} {route}` (the HTTP conventions').
pub fn span_name(
    operation: Option<&str>,
    model: Option<&str>,
    method: &Method,
    route: &str,
) -> String {
    match (operation, model) {
        (Some(op), Some(model)) if !model.is_empty() => format!("{op} {model}"),
        (Some(op), _) => op.to_string(),
        (None, _) => format!("{method} {route}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_follow_the_api() {
        let rows = [
            (Method::POST, "/v1/chat/completions", Some("chat")),
            (Method::POST, "/v1/responses", Some("chat")),
            (Method::GET, "/v1/responses/resp_1", None),
            (Method::POST, "/v1/completions", Some("text_completion")),
            (Method::POST, "/v1/embeddings", Some("embeddings")),
            (Method::POST, "/v1/images/generations", None),
            (Method::POST, "/v1/audio/transcriptions", None),
            (Method::GET, "/v1/models", None),
        ];
        for (method, path, want) in rows {
            assert_eq!(
                operation(&method, Endpoint::from_path(path)),
                want,
                "{method} {path}"
            );
        }
    }

    #[test]
    fn providers_are_known_by_their_hosts_only() {
        let rows = [
            ("api.openai.com", Some("openai")),
            ("my-res.openai.azure.com", Some("azure.ai.openai")),
            ("api.anthropic.com", Some("anthropic")),
            ("generativelanguage.googleapis.com", Some("gcp.gemini")),
            (
                "us-central1-aiplatform.googleapis.com",
                Some("gcp.vertex_ai"),
            ),
            ("storage.googleapis.com", None),
            (
                "bedrock-runtime.us-east-1.amazonaws.com",
                Some("aws.bedrock"),
            ),
            ("s3.amazonaws.com", None),
            ("API.GROQ.COM", Some("groq")),
            ("api.cometapi.com", None),
            ("127.0.0.1", None),
            ("notapi.openai.com.evil.example", None),
        ];
        for (host, want) in rows {
            assert_eq!(provider(host), want, "{host}");
        }
    }

    #[test]
    fn spans_are_named_by_operation_and_model_else_by_route() {
        let rows = [
            (Some("chat"), Some("gpt-4o"), "chat gpt-4o"),
            (Some("embeddings"), None, "embeddings"),
            (None, Some("m"), "POST /v1/images/generations"),
        ];
        for (op, model, want) in rows {
            assert_eq!(
                span_name(op, model, &Method::POST, "/v1/images/generations"),
                want
            );
        }
    }
}
