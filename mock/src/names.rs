//! The names steps take as arguments: the body formats of `status:CODE:FORMAT`
//! and `error_body:FORMAT`, the provider error rows of `error:NAME`, and the
//! delta field of `reasoning:N:FIELD`. Pure data; `errors` holds the bodies.

/// The body format of a `status:CODE[:FORMAT]` answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorFormat {
    /// `{"error":{"message","type","param":null,"code"}}` (the default).
    OpenAi,
    /// CometAPI's envelope: `type` `comet_api_error`, the request id in the message.
    Comet,
    /// `{"code","message","data":null}`.
    Code,
    /// An nginx-style `text/html` page.
    Html,
    /// No body at all.
    Empty,
    /// `text/plain`.
    Text,
}

impl ErrorFormat {
    pub(crate) fn from_name(name: &str) -> Option<ErrorFormat> {
        Some(match name {
            "openai" => ErrorFormat::OpenAi,
            "comet" => ErrorFormat::Comet,
            "code" => ErrorFormat::Code,
            "html" => ErrorFormat::Html,
            "empty" => ErrorFormat::Empty,
            "text" => ErrorFormat::Text,
            _ => return None,
        })
    }
}

/// A provider error row from the seeds (`error:NAME`); `errors::named`
/// holds each one's exact status, headers and body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NamedError {
    InvalidApiKey,
    ExpiredApiKey,
    RevokedApiKey,
    InvalidToken,
    Forbidden,
    QuotaNotEnough,
    ModelNotFound,
    TaskNotFound,
    TaskNotExist,
    MissingModel,
    InvalidValue,
    ModelNotSupported,
    ContextLengthExceeded,
    InvalidRequest500,
    RateLimitExceeded,
    ConcurrentLimitExceeded,
    InsufficientQuota,
    ContentFiltered,
    InternalError,
    ServiceUnavailable,
    BadGateway,
    GatewayTimeout,
    Cloudflare524,
    PayloadTooLarge,
}

impl NamedError {
    /// Every row, in the order of the brief.
    pub const ALL: [NamedError; 24] = [
        NamedError::InvalidApiKey,
        NamedError::ExpiredApiKey,
        NamedError::RevokedApiKey,
        NamedError::InvalidToken,
        NamedError::Forbidden,
        NamedError::QuotaNotEnough,
        NamedError::ModelNotFound,
        NamedError::TaskNotFound,
        NamedError::TaskNotExist,
        NamedError::MissingModel,
        NamedError::InvalidValue,
        NamedError::ModelNotSupported,
        NamedError::ContextLengthExceeded,
        NamedError::InvalidRequest500,
        NamedError::RateLimitExceeded,
        NamedError::ConcurrentLimitExceeded,
        NamedError::InsufficientQuota,
        NamedError::ContentFiltered,
        NamedError::InternalError,
        NamedError::ServiceUnavailable,
        NamedError::BadGateway,
        NamedError::GatewayTimeout,
        NamedError::Cloudflare524,
        NamedError::PayloadTooLarge,
    ];

    /// The name used after `error:`.
    pub fn name(self) -> &'static str {
        match self {
            NamedError::InvalidApiKey => "invalid_api_key",
            NamedError::ExpiredApiKey => "expired_api_key",
            NamedError::RevokedApiKey => "revoked_api_key",
            NamedError::InvalidToken => "invalid_token",
            NamedError::Forbidden => "forbidden",
            NamedError::QuotaNotEnough => "quota_not_enough",
            NamedError::ModelNotFound => "model_not_found",
            NamedError::TaskNotFound => "task_not_found",
            NamedError::TaskNotExist => "task_not_exist",
            NamedError::MissingModel => "missing_model",
            NamedError::InvalidValue => "invalid_value",
            NamedError::ModelNotSupported => "model_not_supported",
            NamedError::ContextLengthExceeded => "context_length_exceeded",
            NamedError::InvalidRequest500 => "invalid_request_500",
            NamedError::RateLimitExceeded => "rate_limit_exceeded",
            NamedError::ConcurrentLimitExceeded => "concurrent_limit_exceeded",
            NamedError::InsufficientQuota => "insufficient_quota",
            NamedError::ContentFiltered => "content_filtered",
            NamedError::InternalError => "internal_error",
            NamedError::ServiceUnavailable => "service_unavailable",
            NamedError::BadGateway => "bad_gateway",
            NamedError::GatewayTimeout => "gateway_timeout",
            NamedError::Cloudflare524 => "cloudflare_524",
            NamedError::PayloadTooLarge => "payload_too_large",
        }
    }

    pub(crate) fn from_name(name: &str) -> Option<NamedError> {
        NamedError::ALL.into_iter().find(|e| e.name() == name)
    }
}

/// The body of `error_body[:FORMAT]`: an error object in a 200.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorBodyFormat {
    /// `{"error":{"message","type":"server_error","code":"server_error"}}` (the default, or `openai`).
    OpenAi,
    /// `{"code":"server_error","message","data":null}`.
    Code,
    /// A code name (`rate_limit_exceeded`): the OpenAI shape with that
    /// name as both `type` and `code`.
    Named(String),
}

/// Where `reasoning:N[:FIELD]` puts its deltas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReasoningField {
    /// `reasoning_content` (DeepSeek, vLLM; the default).
    ReasoningContent,
    /// `reasoning` (OpenRouter, Ollama).
    Reasoning,
}

impl ReasoningField {
    /// The JSON field name.
    pub fn name(self) -> &'static str {
        match self {
            ReasoningField::ReasoningContent => "reasoning_content",
            ReasoningField::Reasoning => "reasoning",
        }
    }

    pub(crate) fn from_name(name: &str) -> Option<ReasoningField> {
        Some(match name {
            "reasoning_content" => ReasoningField::ReasoningContent,
            "reasoning" => ReasoningField::Reasoning,
            _ => return None,
        })
    }
}

/// Whether `name` can stand as an error code in a JSON body unescaped
/// (`[a-z0-9_]`, 1 to 64 characters).
pub fn is_code_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}
