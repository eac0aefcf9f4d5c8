//! Response content negotiation: the representation a request's `Accept` header gets, decided
//! once per request, where the route is known, the way kube-apiserver decides it
//! (docs/kubernetes-api.md §1.5).
//!
//! The header is split into media ranges as `goautoneg.ParseAccept` splits it (spaces trimmed,
//! malformed ranges and parameters dropped, `q` read as a float, 0 when it does not parse), the
//! ranges are ordered as its `sort.Sort` orders them (higher `q` first; a range with a concrete
//! type or subtype moves before a wildcard one), and then tried in that order against the API
//! server's serializers (`application/json`, `application/yaml`,
//! `application/vnd.kubernetes.protobuf`): the first range and serializer whose parameters the
//! endpoint allows decides. The engine writes JSON only, so a range that would be answered in YAML
//! or protobuf is passed over for the next one (a watch whose first choice is YAML is refused, as
//! the API server's stream negotiation refuses it). Nothing is allocated unless the header has
//! more than [`SORTED_IN_PLACE`] ranges or the answer is a 406.

use super::status::ApiError;

/// `meta.k8s.io/v1` or `meta.k8s.io/v1beta1`: the group versions Tables and metadata-only forms
/// exist in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetaVersion {
    V1,
    V1beta1,
}

impl MetaVersion {
    pub fn api_version(self) -> &'static str {
        match self {
            MetaVersion::V1 => "meta.k8s.io/v1",
            MetaVersion::V1beta1 => "meta.k8s.io/v1beta1",
        }
    }
}

/// The resource a request reads or writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Secret,
    Namespace,
}

impl Kind {
    /// How the API server names the object's internal type in its 406 messages.
    fn go_type(self) -> &'static str {
        match self {
            Kind::Secret => "*core.Secret",
            Kind::Namespace => "*core.Namespace",
        }
    }

    fn go_list_type(self) -> &'static str {
        match self {
            Kind::Secret => "*core.SecretList",
            Kind::Namespace => "*core.NamespaceList",
        }
    }
}

/// What answers the request, which decides the transformations it allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// A read of one object (get): like [`Endpoint::Object`], and its metadata-only form may be
    /// answered in protobuf.
    Get(Kind),
    /// Another verb whose answer is one object (create, update, patch, delete).
    Object(Kind),
    /// A list.
    List(Kind),
    /// A watch: a stream of events, each carrying one object.
    Watch(Kind),
    /// Legacy discovery (`/api`, `/apis`, `/api/v1`): no transformation at all.
    Discovery,
}

/// What to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Representation {
    /// The object or list as it is.
    Json,
    /// A `Table` (`kubectl get`).
    Table(MetaVersion),
    /// `PartialObjectMetadata`: of the object, or of each watched object.
    Partial(MetaVersion),
    /// One object's `PartialObjectMetadata` in protobuf (a get only).
    PartialProtobuf(MetaVersion),
    /// `PartialObjectMetadataList` of a list.
    PartialList(MetaVersion),
    /// A metadata-only form of the wrong shape. The API server finds out only when it transforms
    /// what it read, so this 406 comes after the read (a missing object is still a 404).
    Refused(Refusal),
}

/// The 406 of a metadata-only form of the wrong shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The list form was asked of one object (else the single form of a list).
    asked_list: bool,
    go_type: &'static str,
}

impl Refusal {
    pub fn error(self) -> ApiError {
        let message = if self.asked_list {
            format!(
                "you requested PartialObjectMetadataList, but the requested object is not a list ({})",
                self.go_type
            )
        } else {
            format!(
                "you requested PartialObjectMetadata, but the requested object is a list ({})",
                self.go_type
            )
        };
        ApiError::not_acceptable_because(message)
    }
}

/// Headers with at most this many media ranges are parsed and ordered on the stack (Go's
/// `sort.Sort` is an insertion sort up to 12 elements; longer headers are ordered by the same
/// insertion sort, which Go's pattern-defeating quicksort may order differently when `q` values
/// and wildcards disagree).
pub const SORTED_IN_PLACE: usize = 12;

/// The most media ranges a header may list. The insertion sort is quadratic, so an unbounded
/// count would let one request of a few hundred KB (the most the listener reads as headers) cost
/// seconds of CPU; clients send a handful. More is refused with a 406 saying so.
pub const MAX_RANGES: usize = 256;

/// One media range of the header.
#[derive(Clone, Copy, Debug, Default)]
struct Range<'a> {
    type_: &'a str,
    subtype: &'a str,
    q: f32,
    /// Everything after the first `;`, read on demand.
    params: &'a str,
}

fn trim_spaces(s: &str) -> &str {
    s.trim_matches(' ')
}

/// `key=value` pairs of a parameter string as goautoneg keeps them: pairs without `=`, with
/// nothing after it, or with a second `=` are dropped; keys are trimmed of spaces (values where
/// they are used).
fn params(params: &str) -> impl Iterator<Item = (&str, &str)> {
    params.split(';').filter_map(|p| {
        let (key, value) = p.split_once('=')?;
        if value.is_empty() || value.contains('=') {
            return None;
        }
        Some((trim_spaces(key), value))
    })
}

impl<'a> Range<'a> {
    fn parse(part: &'a str) -> Option<Range<'a>> {
        let part = trim_spaces(part);
        let (media, params_text) = part.split_once(';').unwrap_or((part, ""));
        let (type_, rest) = media.split_once('/').unwrap_or((media, ""));
        let type_ = trim_spaces(type_);
        let subtype = if rest.is_empty() {
            if type_ != "*" {
                return None;
            }
            "*"
        } else {
            let (subtype, extra) = rest.split_once('/').unwrap_or((rest, ""));
            if !extra.is_empty() {
                return None;
            }
            trim_spaces(subtype)
        };
        let mut q = 1.0;
        for (key, value) in params(params_text) {
            if key == "q" {
                // Go parses the untrimmed value; whatever does not parse counts as 0.
                q = value.parse::<f32>().unwrap_or(0.0);
            }
        }
        Some(Range {
            type_,
            subtype,
            q,
            params: params_text,
        })
    }

    /// goautoneg's ordering (not a strict order: Go's insertion sort applies it as it is).
    fn before(&self, other: &Range<'_>) -> bool {
        self.q > other.q
            || (self.type_ != "*" && other.type_ == "*")
            || (self.subtype != "*" && other.subtype == "*")
    }
}

fn insertion_sort(ranges: &mut [Range<'_>]) {
    for i in 1..ranges.len() {
        let mut j = i;
        while j > 0 && ranges[j].before(&ranges[j - 1]) {
            ranges.swap(j, j - 1);
            j -= 1;
        }
    }
}

/// The API server's serializers, in its order (CBOR is behind a feature gate that is off).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Serializer {
    Json,
    Yaml,
    Protobuf,
}

impl Serializer {
    const ALL: [Serializer; 3] = [Serializer::Json, Serializer::Yaml, Serializer::Protobuf];

    fn subtype(self) -> &'static str {
        match self {
            Serializer::Json => "json",
            Serializer::Yaml => "yaml",
            Serializer::Protobuf => "vnd.kubernetes.protobuf",
        }
    }

    fn streams(self) -> bool {
        self != Serializer::Yaml
    }

    fn matched_by(self, range: &Range<'_>) -> bool {
        (range.type_ == "application" && (range.subtype == self.subtype() || range.subtype == "*"))
            || (range.type_ == "*" && range.subtype == "*")
    }
}

/// A transformation asked with `as`/`g`/`v` (any of them present).
#[derive(Clone, Copy)]
struct Convert<'a> {
    kind: &'a str,
    group: &'a str,
    version: &'a str,
}

impl Convert<'_> {
    fn meta_version(&self) -> Option<MetaVersion> {
        match (self.group, self.version) {
            ("meta.k8s.io", "v1") => Some(MetaVersion::V1),
            ("meta.k8s.io", "v1beta1") => Some(MetaVersion::V1beta1),
            _ => None,
        }
    }
}

/// `acceptMediaTypeOptions` with the endpoint's restrictions: `None` when the range's parameters
/// rule this serializer out, else the transformation asked (if any).
fn options<'a>(
    range: &Range<'a>,
    serializer: Serializer,
    endpoint: Endpoint,
) -> Option<Option<Convert<'a>>> {
    let (mut kind, mut group, mut version) = (None, None, None);
    let (mut stream, mut server_version) = ("", "");
    // Later duplicates win, as in the map Go parses them into.
    for (key, value) in params(range.params) {
        let value = trim_spaces(value);
        match key {
            "as" => kind = Some(value),
            "g" => group = Some(value),
            "v" => version = Some(value),
            "stream" => stream = value,
            "sv" => server_version = value,
            _ => {} // pretty, export, profile, charset, anything unknown: ignored
        }
    }
    if !stream.is_empty() && (!serializer.streams() || stream != "watch") {
        return None;
    }
    // Resources allow their meta group's version; discovery allows none.
    if !server_version.is_empty() && (endpoint == Endpoint::Discovery || server_version != "v1") {
        return None;
    }
    let convert = (kind.is_some() || group.is_some() || version.is_some()).then(|| Convert {
        kind: kind.unwrap_or(""),
        group: group.unwrap_or(""),
        version: version.unwrap_or(""),
    });
    let allowed = match convert {
        None => true,
        Some(_) if endpoint == Endpoint::Discovery => false,
        Some(c) => {
            c.meta_version().is_some()
                && match c.kind {
                    "Table" => matches!(serializer, Serializer::Json | Serializer::Yaml),
                    "PartialObjectMetadata" | "PartialObjectMetadataList" => true,
                    _ => false,
                }
        }
    };
    allowed.then_some(convert)
}

/// What a JSON answer with this transformation is on this endpoint.
fn produce(convert: Option<Convert<'_>>, endpoint: Endpoint) -> Representation {
    let Some(c) = convert else {
        return Representation::Json;
    };
    let version = c
        .meta_version()
        .expect("only meta.k8s.io/v1 and v1beta1 transformations are allowed");
    match (c.kind, endpoint) {
        ("Table", _) => Representation::Table(version),
        ("PartialObjectMetadata", Endpoint::Get(_) | Endpoint::Object(_) | Endpoint::Watch(_)) => {
            Representation::Partial(version)
        }
        ("PartialObjectMetadata", Endpoint::List(kind)) => Representation::Refused(Refusal {
            asked_list: false,
            go_type: kind.go_list_type(),
        }),
        ("PartialObjectMetadataList", Endpoint::List(_)) => Representation::PartialList(version),
        // On a watch the API server opens the stream and ends it at the first event it cannot
        // encode; the engine refuses it up front instead.
        (
            "PartialObjectMetadataList",
            Endpoint::Get(kind) | Endpoint::Object(kind) | Endpoint::Watch(kind),
        ) => Representation::Refused(Refusal {
            asked_list: true,
            go_type: kind.go_type(),
        }),
        _ => unreachable!("options allows no other transformation"),
    }
}

fn decide(ranges: &[Range<'_>], endpoint: Endpoint) -> Result<Representation, ApiError> {
    for range in ranges {
        for serializer in Serializer::ALL {
            if !serializer.matched_by(range) {
                continue;
            }
            let Some(convert) = options(range, serializer, endpoint) else {
                continue;
            };
            match serializer {
                Serializer::Json => return Ok(produce(convert, endpoint)),
                // The API server would stream YAML's missing stream serializer into a 406.
                Serializer::Yaml if matches!(endpoint, Endpoint::Watch(_)) => {
                    return Err(ApiError::not_acceptable_stream());
                }
                // The metadata-only forms: the API server allows them on every serializer, so
                // one of the wrong shape is refused here too; a get's PartialObjectMetadata is
                // written in protobuf. The API server answers the other forms in protobuf;
                // they are passed over.
                Serializer::Protobuf if convert.is_some() => {
                    match (produce(convert, endpoint), endpoint) {
                        (refused @ Representation::Refused(_), _) => return Ok(refused),
                        (Representation::Partial(version), Endpoint::Get(_)) => {
                            return Ok(Representation::PartialProtobuf(version));
                        }
                        _ => {}
                    }
                }
                // Answered in YAML or protobuf by the API server; not written here.
                Serializer::Yaml | Serializer::Protobuf => {}
            }
        }
    }
    Err(ApiError::not_acceptable())
}

/// The representation `accept` gets on `endpoint`, or the 406 that refuses it before anything is
/// read. A missing or empty header is plain JSON.
pub fn negotiate(accept: Option<&str>, endpoint: Endpoint) -> Result<Representation, ApiError> {
    let header = match accept {
        None | Some("") => return Ok(Representation::Json),
        Some(header) => header,
    };
    if let Some(known) = common(header, endpoint) {
        return Ok(known);
    }
    parsed(header, endpoint)
}

/// The Accept of kube's `get_metadata`.
const PARTIAL_V1: &str = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1";

/// The Accept of client-go's metadata client on a get (and the service's GetSecret).
const PARTIAL_PROTOBUF_V1: &str = crate::k8s_wire::PARTIAL_OBJECT_METADATA_ACCEPT;

/// The Accept headers nearly every request carries (kube-rs and client-go: plain JSON, and a
/// metadata-only read), decided without parsing. Each answer is the one [`parsed`] gives
/// (a test compares them on every endpoint).
fn common(header: &str, endpoint: Endpoint) -> Option<Representation> {
    match (header, endpoint) {
        ("application/json", Endpoint::Get(_) | Endpoint::Object(_) | Endpoint::List(_)) => {
            Some(Representation::Json)
        }
        (PARTIAL_V1, Endpoint::Get(_) | Endpoint::Object(_)) => {
            Some(Representation::Partial(MetaVersion::V1))
        }
        (PARTIAL_PROTOBUF_V1, Endpoint::Get(_)) => {
            Some(Representation::PartialProtobuf(MetaVersion::V1))
        }
        _ => None,
    }
}

/// [`negotiate`] of a header that is there, parsed range by range.
fn parsed(header: &str, endpoint: Endpoint) -> Result<Representation, ApiError> {
    let mut in_place = [Range::default(); SORTED_IN_PLACE];
    let mut n = 0;
    let mut spilled: Vec<Range<'_>> = Vec::new();
    for range in header.split(',').filter_map(Range::parse) {
        if n + spilled.len().saturating_sub(SORTED_IN_PLACE) >= MAX_RANGES {
            return Err(ApiError::not_acceptable_because(format!(
                "the Accept header lists more than {MAX_RANGES} media ranges"
            )));
        }
        if n < SORTED_IN_PLACE {
            in_place[n] = range;
            n += 1;
        } else {
            if spilled.is_empty() {
                spilled.extend_from_slice(&in_place);
            }
            spilled.push(range);
        }
    }
    let ranges: &mut [Range<'_>] = if spilled.is_empty() {
        &mut in_place[..n]
    } else {
        &mut spilled
    };
    insertion_sort(ranges);
    decide(ranges, endpoint)
}

#[cfg(test)]
mod tests {
    use super::*;
    use MetaVersion::{V1, V1beta1};
    use Representation::{Json, Partial, PartialList, PartialProtobuf, Table};

    const SECRET: Endpoint = Endpoint::Object(Kind::Secret);
    const SECRETS: Endpoint = Endpoint::List(Kind::Secret);
    const WATCH: Endpoint = Endpoint::Watch(Kind::Secret);

    /// What a test expects: a representation, or a 406 with this message.
    #[derive(Debug, PartialEq)]
    enum Want {
        Is(Representation),
        NotAcceptable(&'static str),
    }
    use Want::{Is, NotAcceptable};

    const ANY: &str = "only the following media types are accepted: application/json";
    const STREAM: &str =
        "only the following media types are accepted: application/json;stream=watch";
    const LIST_OF_ONE: &str = "you requested PartialObjectMetadataList, but the requested object is not a list (*core.Secret)";
    const ONE_OF_LIST: &str = "you requested PartialObjectMetadata, but the requested object is a list (*core.SecretList)";

    #[test]
    fn the_common_headers_get_what_parsing_them_gives() {
        let endpoints = [Kind::Secret, Kind::Namespace]
            .into_iter()
            .flat_map(|k| {
                [
                    Endpoint::Get(k),
                    Endpoint::Object(k),
                    Endpoint::List(k),
                    Endpoint::Watch(k),
                ]
            })
            .chain([Endpoint::Discovery]);
        let mut decided = 0;
        for endpoint in endpoints {
            for header in ["application/json", PARTIAL_V1, PARTIAL_PROTOBUF_V1] {
                if let Some(known) = common(header, endpoint) {
                    decided += 1;
                    let by_parsing = parsed(header, endpoint).map_err(|_| "refused");
                    assert_eq!(Ok(known), by_parsing, "{header} on {endpoint:?}");
                }
            }
        }
        assert_eq!(decided, 12, "the common headers decided on these endpoints");
    }

    fn outcome(accept: Option<&str>, endpoint: Endpoint) -> Want {
        match negotiate(accept, endpoint) {
            Ok(Representation::Refused(r)) => {
                let e = r.error();
                assert_eq!((e.code, e.reason), (406, Some("NotAcceptable")));
                NotAcceptable(match e.message.as_str() {
                    LIST_OF_ONE => LIST_OF_ONE,
                    ONE_OF_LIST => ONE_OF_LIST,
                    other => panic!("unexpected refusal {other}"),
                })
            }
            Ok(r) => Is(r),
            Err(e) => {
                assert_eq!((e.code, e.reason), (406, Some("NotAcceptable")));
                NotAcceptable(match e.message.as_str() {
                    ANY => ANY,
                    STREAM => STREAM,
                    other => panic!("unexpected 406 {other}"),
                })
            }
        }
    }

    /// Each header with what a single Secret, the Secret list and a Secret watch get.
    #[test]
    fn clients_headers_get_what_kube_apiserver_answers_in_json() {
        let cases: &[(&str, Option<&str>, [Want; 3])] = &[
            (
                "no header (kube-rs get/list/create)",
                None,
                [Is(Json), Is(Json), Is(Json)],
            ),
            ("empty header", Some(""), [Is(Json), Is(Json), Is(Json)]),
            (
                "kubectl get",
                Some(
                    "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json",
                ),
                [Is(Table(V1)), Is(Table(V1)), Is(Table(V1))],
            ),
            (
                "kubectl -o yaml, the Python client, kube-rs watch",
                Some("application/json"),
                [Is(Json), Is(Json), Is(Json)],
            ),
            ("curl", Some("*/*"), [Is(Json), Is(Json), Is(Json)]),
            (
                "client-go typed clients (protobuf first)",
                Some("application/vnd.kubernetes.protobuf,application/json"),
                [Is(Json), Is(Json), Is(Json)],
            ),
            (
                "client-go metadata client, get and watch",
                Some(
                    "application/vnd.kubernetes.protobuf;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json",
                ),
                [Is(Partial(V1)), NotAcceptable(ONE_OF_LIST), Is(Partial(V1))],
            ),
            (
                "client-go metadata client, list",
                Some(
                    "application/vnd.kubernetes.protobuf;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json",
                ),
                [
                    NotAcceptable(LIST_OF_ONE),
                    Is(PartialList(V1)),
                    NotAcceptable(LIST_OF_ONE),
                ],
            ),
            (
                "kube-rs get_metadata / watch_metadata",
                Some("application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"),
                [Is(Partial(V1)), NotAcceptable(ONE_OF_LIST), Is(Partial(V1))],
            ),
            (
                "kube-rs list_metadata",
                Some("application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"),
                [
                    NotAcceptable(LIST_OF_ONE),
                    Is(PartialList(V1)),
                    NotAcceptable(LIST_OF_ONE),
                ],
            ),
            (
                "v1beta1 forms",
                Some("application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1beta1"),
                [
                    Is(Partial(V1beta1)),
                    NotAcceptable(ONE_OF_LIST),
                    Is(Partial(V1beta1)),
                ],
            ),
            (
                "a v1beta1 Table only",
                Some("application/json;as=Table;v=v1beta1;g=meta.k8s.io"),
                [Is(Table(V1beta1)), Is(Table(V1beta1)), Is(Table(V1beta1))],
            ),
            (
                "kubectl's discovery header on a resource",
                Some(
                    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json",
                ),
                [Is(Json), Is(Json), Is(Json)],
            ),
            (
                "a browser",
                Some("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
                [Is(Json), Is(Json), Is(Json)],
            ),
        ];
        for (client, accept, wants) in cases {
            for (endpoint, want) in [SECRET, SECRETS, WATCH].into_iter().zip(wants) {
                assert_eq!(
                    &outcome(*accept, endpoint),
                    want,
                    "{client} ({accept:?}) on {endpoint:?}"
                );
            }
        }
    }

    /// A get is answered like the other single-object verbs, except that one object's
    /// metadata-only form asked for in protobuf is written in protobuf (client-go's metadata
    /// client and the service's GetSecret list it first). Every other protobuf range is still
    /// passed over, and the other verbs and the watch still get the JSON form listed next.
    #[test]
    fn a_get_alone_gets_its_metadata_in_protobuf() {
        const PB_PARTIAL: &str =
            "application/vnd.kubernetes.protobuf;as=PartialObjectMetadata;g=meta.k8s.io;v=v1";
        let cases: &[(&str, Want)] = &[
            (PARTIAL_PROTOBUF_V1, Is(PartialProtobuf(V1))),
            (PB_PARTIAL, Is(PartialProtobuf(V1))),
            (
                "application/vnd.kubernetes.protobuf;as=PartialObjectMetadata;g=meta.k8s.io;v=v1beta1",
                Is(PartialProtobuf(V1beta1)),
            ),
            (
                "application/json;q=0.5,application/vnd.kubernetes.protobuf;as=PartialObjectMetadata;g=meta.k8s.io;v=v1",
                Is(PartialProtobuf(V1)),
            ),
            (
                "application/json,application/vnd.kubernetes.protobuf;as=PartialObjectMetadata;g=meta.k8s.io;v=v1",
                Is(Json),
            ),
            (
                "application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io,application/json",
                Is(Json),
            ),
            (
                "application/vnd.kubernetes.protobuf;as=PartialObjectMetadata;g=other.io;v=v1,application/json",
                Is(Json),
            ),
            (
                "application/vnd.kubernetes.protobuf,application/json",
                Is(Json),
            ),
            ("application/vnd.kubernetes.protobuf", NotAcceptable(ANY)),
        ];
        for kind in [Kind::Secret, Kind::Namespace] {
            for (accept, want) in cases {
                assert_eq!(
                    &outcome(Some(accept), Endpoint::Get(kind)),
                    want,
                    "{accept} on a get of {kind:?}"
                );
            }
        }
        for endpoint in [SECRET, WATCH] {
            assert_eq!(
                outcome(Some(PARTIAL_PROTOBUF_V1), endpoint),
                Is(Partial(V1))
            );
            assert_eq!(outcome(Some(PB_PARTIAL), endpoint), NotAcceptable(ANY));
        }
        // A metadata-only form of the wrong shape is refused under protobuf as under JSON,
        // before any range after it is tried.
        const PB_LIST: &str =
            "application/vnd.kubernetes.protobuf;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1";
        for endpoint in [Endpoint::Get(Kind::Secret), SECRET, WATCH] {
            assert_eq!(
                outcome(Some(&format!("{PB_LIST},application/json")), endpoint),
                NotAcceptable(LIST_OF_ONE),
                "{endpoint:?}"
            );
        }
        for accept in [PARTIAL_PROTOBUF_V1, PB_PARTIAL] {
            assert_eq!(outcome(Some(accept), SECRETS), NotAcceptable(ONE_OF_LIST));
        }
        // The list form of a list is the API server's to write in protobuf: passed over.
        assert_eq!(
            outcome(Some(&format!("{PB_LIST},application/json")), SECRETS),
            Is(Json)
        );
    }

    #[test]
    fn ranges_are_tried_in_kube_apiservers_order() {
        let table = Some(Table(V1));
        let cases: &[(&str, Option<Representation>)] = &[
            // The first producible range decides: a Table after plain JSON is not asked.
            (
                "application/json,application/json;as=Table;v=v1;g=meta.k8s.io",
                Some(Json),
            ),
            (
                "text/html,application/json;as=Table;v=v1;g=meta.k8s.io",
                table,
            ),
            // Higher q first; q=0 still counts (it is only ordered last).
            (
                "application/json;as=Table;v=v1;g=meta.k8s.io;q=0.5,application/json",
                Some(Json),
            ),
            (
                "application/json;q=0.5,application/json;as=Table;v=v1;g=meta.k8s.io",
                table,
            ),
            ("application/json;q=0", Some(Json)),
            ("application/json;q=zero", Some(Json)),
            (
                "application/json;as=Table;v=v1;g=meta.k8s.io;q=,application/json;q=0.9",
                table,
            ),
            (
                "application/json;as=Table;v=v1;g=meta.k8s.io;q= 1,application/json;q=0.9",
                Some(Json),
            ),
            // A wildcard is ordered after concrete types, whatever comes first.
            ("*/*,application/json;as=Table;v=v1;g=meta.k8s.io", table),
            (
                "application/*,application/json;as=Table;v=v1;g=meta.k8s.io",
                table,
            ),
            // ... even at a higher q (goautoneg's comparison, applied by Go's insertion sort).
            (
                "*/*;q=1,application/json;as=Table;g=meta.k8s.io;v=v1;q=0.5",
                table,
            ),
            ("*/*;as=Table;g=meta.k8s.io;v=v1beta1", Some(Table(V1beta1))),
            ("application/*;as=Table;g=meta.k8s.io;v=v1", table),
            // Forms of other groups, versions or kinds are passed over.
            ("application/json;as=Table,application/json", Some(Json)),
            (
                "application/json;as=Table;g=meta.k8s.io;v=v2,application/json;as=Table;g=meta.k8s.io;v=v1",
                table,
            ),
            ("application/json;as=Table;g=meta.k8s.io", None),
            ("application/json;as=Table;v=v1", None),
            ("application/json;as=Secret;g=meta.k8s.io;v=v1", None),
            ("application/json;g=meta.k8s.io;v=v1", None),
            ("application/json;v=v1", None),
            // A parameter with no value is dropped: this is plain JSON.
            ("application/json;as=", Some(Json)),
            ("application/json;as= ;g=meta.k8s.io;v=v1", None),
            // Parameters the API server does not recognise are ignored; pretty too.
            ("application/json;charset=utf-8;foo=bar", Some(Json)),
            ("application/json;pretty=1", Some(Json)),
            ("application/json;export=1", Some(Json)),
            ("application/json;stream=watch", Some(Json)),
            ("application/json;stream=", Some(Json)),
            ("application/json;stream=other", None),
            ("application/json;sv=v1", Some(Json)),
            ("application/json;sv=v2", None),
            ("application/json;sv=", Some(Json)),
            // Malformed parameters are dropped, duplicates keep the last.
            ("application/json;as==Table", Some(Json)),
            ("application/json;as;g=meta.k8s.io", None),
            (
                "application/json;as=Table;v=v1;g=meta.k8s.io;as=PartialObjectMetadata",
                Some(Partial(V1)),
            ),
            ("application/json; as=Table ; v=v1; g=meta.k8s.io", table),
            ("application/json;as=\"Table\";v=v1;g=meta.k8s.io", None),
            // YAML and protobuf are the API server's to write: passed over for what follows.
            ("application/yaml,application/json", Some(Json)),
            ("application/yaml", None),
            ("application/vnd.kubernetes.protobuf", None),
            (
                "application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io,application/json",
                Some(Json),
            ),
            // Types are compared exactly; malformed ranges are dropped.
            ("Application/JSON", None),
            ("application/json-patch+json", None),
            ("application/jsonx", None),
            ("text/json", None),
            ("text/*", None),
            ("*/json", None),
            ("application", None),
            ("application/", None),
            ("application/json/x", None),
            ("application/json/", Some(Json)),
            ("*", Some(Json)),
            ("*/", Some(Json)),
            (",", None),
            (" ", None),
            ("  application/json  ", Some(Json)),
            ("application / json", Some(Json)),
            ("application/json\t", None),
        ];
        for (accept, want) in cases {
            let got = negotiate(Some(accept), SECRET);
            match want {
                Some(want) => assert_eq!(got.as_ref().ok(), Some(want), "{accept:?}: {got:?}"),
                None => assert_eq!(
                    got.map_err(|e| e.message),
                    Err(ANY.to_owned()),
                    "{accept:?}"
                ),
            }
        }
    }

    #[test]
    fn a_watch_cannot_stream_yaml() {
        for accept in [
            "application/yaml",
            "application/yaml,application/json",
            "application/*;q=0.5,application/yaml",
        ] {
            assert_eq!(
                outcome(Some(accept), WATCH),
                NotAcceptable(STREAM),
                "{accept}"
            );
            assert_ne!(
                outcome(Some(accept), SECRET),
                NotAcceptable(STREAM),
                "{accept}"
            );
        }
        // YAML with stream=watch is not YAML's to serve: the next range decides.
        assert_eq!(
            outcome(
                Some("application/yaml;stream=watch,application/json"),
                WATCH
            ),
            Is(Json)
        );
        assert_eq!(
            outcome(
                Some("application/vnd.kubernetes.protobuf,application/json"),
                WATCH
            ),
            Is(Json)
        );
        assert_eq!(outcome(Some("text/plain"), WATCH), NotAcceptable(ANY));
    }

    #[test]
    fn discovery_takes_no_transformation() {
        let d = Endpoint::Discovery;
        assert_eq!(
            outcome(
                Some(
                    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
                ),
                d
            ),
            Is(Json)
        );
        assert_eq!(outcome(Some("*/*"), d), Is(Json));
        assert_eq!(outcome(None, d), Is(Json));
        for refused in [
            "application/json;as=Table;v=v1;g=meta.k8s.io",
            "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1",
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
            "application/json;sv=v1",
            "text/html",
        ] {
            assert_eq!(outcome(Some(refused), d), NotAcceptable(ANY), "{refused}");
        }
    }

    #[test]
    fn namespaces_are_named_in_their_refusals() {
        let e = |r: Result<Representation, ApiError>| match r {
            Ok(Representation::Refused(r)) => r.error().message,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            e(negotiate(
                Some("application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"),
                Endpoint::Object(Kind::Namespace)
            )),
            "you requested PartialObjectMetadataList, but the requested object is not a list (*core.Namespace)"
        );
        assert_eq!(
            e(negotiate(
                Some("application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"),
                Endpoint::List(Kind::Namespace)
            )),
            "you requested PartialObjectMetadata, but the requested object is a list (*core.NamespaceList)"
        );
    }

    /// Counts this thread's allocations (the library's test binary has no other global allocator).
    struct Counting;

    thread_local! {
        static ALLOCATIONS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }

    // SAFETY: every call is passed to the system allocator unchanged; only a counter is added.
    unsafe impl std::alloc::GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
            let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
            // SAFETY: the caller's contract is the system allocator's.
            unsafe { std::alloc::System.alloc(layout) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
            // SAFETY: the pointer came from the system allocator with this layout.
            unsafe { std::alloc::System.dealloc(ptr, layout) }
        }
    }

    #[global_allocator]
    static COUNTING: Counting = Counting;

    fn allocations(f: impl FnOnce()) -> usize {
        let before = ALLOCATIONS.with(std::cell::Cell::get);
        f();
        ALLOCATIONS.with(std::cell::Cell::get) - before
    }

    proptest::proptest! {
        /// An Accept header is untrusted input: whatever it holds (header values are visible
        /// ASCII; these strings lean on the characters the parser splits and trims at), every
        /// endpoint gets an answer and nothing panics, and an answer other than a 406 is one of
        /// the forms the endpoint can produce.
        #[test]
        fn any_header_gets_an_answer(header in "[ -~]{0,40}|([a-z*/;=,. q0-9]{0,12}){0,12}") {
            for endpoint in [
                SECRET,
                SECRETS,
                WATCH,
                Endpoint::Object(Kind::Namespace),
                Endpoint::Discovery,
            ] {
                match negotiate(Some(&header), endpoint) {
                    Err(e) => proptest::prop_assert_eq!(e.code, 406),
                    Ok(Representation::Table(_)) | Ok(Representation::Partial(_)) => {
                        proptest::prop_assert!(endpoint != Endpoint::Discovery)
                    }
                    Ok(Representation::PartialList(_)) => {
                        proptest::prop_assert!(matches!(endpoint, Endpoint::List(_)))
                    }
                    Ok(_) => {}
                }
            }
        }
    }

    /// A header listing more ranges than [`MAX_RANGES`] (which would make the quadratic sort a
    /// cheap way to burn the server's CPU) is refused; exactly that many is still negotiated.
    #[test]
    fn a_header_with_too_many_ranges_is_refused() {
        // Rising `q`: every range sorts before all the earlier ones (the sort's worst case).
        let ranges = |count: usize| {
            (1..=count)
                .map(|i| format!("text/plain;q=0.{i:05}"))
                .chain(["application/json;q=0.00000".to_owned()])
                .collect::<Vec<_>>()
                .join(",")
        };
        let at_most = ranges(MAX_RANGES - 1);
        assert_eq!(outcome(Some(&at_most), SECRET), Is(Json));
        for count in [MAX_RANGES, 100_000] {
            let header = ranges(count);
            match negotiate(Some(&header), SECRET) {
                Err(e) => assert!(
                    e.message.contains("more than 256 media ranges"),
                    "{}",
                    e.message
                ),
                Ok(r) => panic!("{count} ranges: {r:?}"),
            }
        }
    }

    #[test]
    fn negotiating_allocates_nothing_unless_refused_or_long() {
        for accept in [
            "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1",
            "application/vnd.kubernetes.protobuf;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json",
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json",
            "*/*",
        ] {
            let mut got = None;
            assert_eq!(
                allocations(|| got = Some(negotiate(Some(accept), SECRET))),
                0,
                "{accept}"
            );
            assert!(matches!(got, Some(Ok(_))), "{accept}");
        }
        // The counter does count: a 406 builds its message.
        assert!(allocations(|| drop(negotiate(Some("text/html"), SECRET))) > 0);
    }

    #[test]
    fn long_headers_are_ordered_the_same_way() {
        let mut accept = "text/html,".repeat(SORTED_IN_PLACE + 3);
        accept.push_str("*/*,application/json;as=Table;v=v1;g=meta.k8s.io");
        assert_eq!(outcome(Some(&accept), SECRETS), Is(Table(V1)));
        let refused = "text/html,".repeat(40);
        assert_eq!(outcome(Some(&refused), SECRETS), NotAcceptable(ANY));
    }
}
