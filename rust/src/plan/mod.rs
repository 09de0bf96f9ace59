//! Graph compilation: a [`GraphSpec`] (what the user declared) is validated and turned into an
//! immutable [`Plan`] of channels, triggers and edge writes that the scheduler executes.
//!
//! The channel layout follows LangGraph's, because users see its names in stream metadata
//! (`langgraph_triggers`): every node `x` is triggered by an ephemeral `branch:to:x` channel,
//! a wait-for-all edge `[a, b] -> c` gets a barrier channel `join:a+b:c`, and `__start__`
//! carries the run's input to the start node.
//!
//! Error messages are LangGraph's, word for word: users match on them.

use std::collections::{HashMap, HashSet};

pub const START: &str = "__start__";
pub const END: &str = "__end__";
/// Characters LangGraph reserves for checkpoint namespaces (`parent:task|child`).
const RESERVED_CHARS: [char; 2] = ['|', ':'];

/// Index of a channel in [`Plan::channels`].
pub type ChannelId = usize;
/// Index of a node in [`Plan::nodes`]; [`START_NODE`] is the start node.
pub type NodeId = usize;
/// The start node is always node 0; user nodes follow in declaration order.
pub const START_NODE: NodeId = 0;

/// A validation failure, carrying LangGraph's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PlanError(pub String);

fn fail<T>(message: impl Into<String>) -> Result<T, PlanError> {
    Err(PlanError(message.into()))
}

/// How a state key combines the values written to it in one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// One value per step; a second write in the same step is an error.
    LastValue,
    /// Values are folded into the current value by a binary reducer (held by the caller).
    Reducer,
    /// As `LastValue`, but emptied at the end of every step that does not write it
    /// (LangGraph's `EphemeralValue` state key).
    Ephemeral,
}

#[derive(Debug, Clone)]
pub struct KeySpec {
    pub name: String,
    pub kind: KeyKind,
}

#[derive(Debug, Clone, Default)]
pub struct NodeSpec {
    pub name: String,
    /// Deferred nodes run only once no other node is triggered.
    pub defer: bool,
    /// Nodes this node may route to with `Command(goto=...)` (declared destinations).
    pub ends: Vec<String>,
}

impl NodeSpec {
    /// A plain node: not deferred, no declared destinations.
    pub fn named(name: impl Into<String>) -> Self {
        NodeSpec {
            name: name.into(),
            ..Default::default()
        }
    }
}

#[derive(Debug, Clone)]
pub struct BranchSpec {
    pub source: String,
    pub name: String,
    /// The declared targets (`path_map` values), or `None` when any node may be returned.
    pub ends: Option<Vec<String>>,
}

/// Everything a user declared on a `StateGraph`.
#[derive(Debug, Clone, Default)]
pub struct GraphSpec {
    pub keys: Vec<KeySpec>,
    pub nodes: Vec<NodeSpec>,
    pub edges: Vec<(String, String)>,
    pub waiting_edges: Vec<(Vec<String>, String)>,
    pub branches: Vec<BranchSpec>,
    pub interrupt_before: Vec<String>,
    pub interrupt_after: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelKind {
    /// A state key.
    Key(KeyKind),
    /// Holds a trigger for one step (`branch:to:x`, `__start__`).
    Ephemeral,
    /// Like `Ephemeral`, but only becomes visible once the run would otherwise finish
    /// (the trigger of a deferred node).
    AfterFinish,
    /// Available once every named source has written (`join:a+b:c`). `after_finish` marks a
    /// barrier in front of a deferred node.
    Barrier { sources: usize, after_finish: bool },
}

#[derive(Debug, Clone)]
pub struct ChannelDef {
    pub name: String,
    pub kind: ChannelKind,
}

/// A write a node makes every time it completes, whatever it returns (its static edges).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EdgeWrite {
    Trigger(ChannelId),
    /// Marks source slot `slot` of a barrier channel as arrived.
    Barrier {
        channel: ChannelId,
        slot: usize,
    },
}

#[derive(Debug, Clone)]
pub struct PlanNode {
    pub name: String,
    /// Channels whose update schedules this node, in channel order.
    pub triggers: Vec<ChannelId>,
    /// Trigger names sorted as LangGraph reports them in `langgraph_triggers`.
    pub trigger_names: Vec<String>,
    /// The channel other nodes write to route here (`branch:to:x`).
    pub entry: ChannelId,
    pub edge_writes: Vec<EdgeWrite>,
    pub defer: bool,
    pub interrupt_before: bool,
    pub interrupt_after: bool,
}

/// The compiled, immutable form of a graph.
#[derive(Debug, Clone)]
pub struct Plan {
    pub channels: Vec<ChannelDef>,
    /// State keys occupy channels `0..keys`, in declaration order.
    pub keys: usize,
    pub nodes: Vec<PlanNode>,
    /// Node ids sorted by name: the order in which pull tasks are prepared and in which
    /// their writes are applied.
    pub nodes_by_name: Vec<NodeId>,
    /// `name_rank[node]`: the node's position in `nodes_by_name`.
    pub name_rank: Vec<usize>,
    node_index: HashMap<String, NodeId>,
    /// For every channel, the nodes it can trigger.
    pub triggered_by: Vec<Vec<NodeId>>,
}

/// Checks a node name as `add_node` does, before anything else is recorded.
pub fn validate_node_name(name: &str, existing: &[&str]) -> Result<(), PlanError> {
    if existing.contains(&name) {
        return fail(format!("Node `{name}` already present."));
    }
    if name == START || name == END {
        return fail(format!("Node `{name}` is reserved."));
    }
    for reserved in RESERVED_CHARS {
        if name.contains(reserved) {
            return fail(format!(
                "'{reserved}' is a reserved character and is not allowed in the node names."
            ));
        }
    }
    Ok(())
}

impl Plan {
    pub fn node_id(&self, name: &str) -> Option<NodeId> {
        self.node_index.get(name).copied()
    }

    /// Validates `spec` the way LangGraph's `compile` does and builds the plan.
    pub fn compile(spec: &GraphSpec) -> Result<Plan, PlanError> {
        validate(spec)?;
        let mut channels: Vec<ChannelDef> = spec
            .keys
            .iter()
            .map(|k| ChannelDef {
                name: k.name.clone(),
                kind: ChannelKind::Key(k.kind),
            })
            .collect();
        let keys = channels.len();
        let mut add_channel = |name: String, kind: ChannelKind| {
            channels.push(ChannelDef { name, kind });
            channels.len() - 1
        };

        let interrupt_before: HashSet<&str> =
            spec.interrupt_before.iter().map(String::as_str).collect();
        let interrupt_after: HashSet<&str> =
            spec.interrupt_after.iter().map(String::as_str).collect();
        let all_interrupt =
            |set: &HashSet<&str>, name: &str| set.contains("*") || set.contains(name);

        let mut nodes = Vec::with_capacity(spec.nodes.len() + 1);
        let start_entry = add_channel(START.to_string(), ChannelKind::Ephemeral);
        nodes.push(PlanNode {
            name: START.to_string(),
            triggers: vec![start_entry],
            trigger_names: vec![START.to_string()],
            entry: start_entry,
            edge_writes: Vec::new(),
            defer: false,
            interrupt_before: false,
            interrupt_after: false,
        });
        for node in &spec.nodes {
            let kind = if node.defer {
                ChannelKind::AfterFinish
            } else {
                ChannelKind::Ephemeral
            };
            let entry = add_channel(format!("branch:to:{}", node.name), kind);
            nodes.push(PlanNode {
                name: node.name.clone(),
                triggers: vec![entry],
                trigger_names: Vec::new(),
                entry,
                edge_writes: Vec::new(),
                defer: node.defer,
                interrupt_before: all_interrupt(&interrupt_before, &node.name),
                interrupt_after: all_interrupt(&interrupt_after, &node.name),
            });
        }
        let node_index: HashMap<String, NodeId> = nodes
            .iter()
            .enumerate()
            .map(|(id, n)| (n.name.clone(), id))
            .collect();

        // Static edges: written by the source every time it completes. A set, as in
        // LangGraph: declaring the same edge twice does not trigger twice.
        let mut seen_edges = HashSet::new();
        for (source, target) in &spec.edges {
            if target == END || !seen_edges.insert((source, target)) {
                continue;
            }
            let entry = nodes[node_index[target.as_str()]].entry;
            nodes[node_index[source.as_str()]]
                .edge_writes
                .push(EdgeWrite::Trigger(entry));
        }
        let mut seen_joins = HashSet::new();
        for (sources, target) in &spec.waiting_edges {
            if target == END || !seen_joins.insert((sources, target)) {
                continue;
            }
            let target_id = node_index[target.as_str()];
            let channel = add_channel(
                format!("join:{}:{}", sources.join("+"), target),
                ChannelKind::Barrier {
                    sources: sources.len(),
                    after_finish: nodes[target_id].defer,
                },
            );
            nodes[target_id].triggers.push(channel);
            for (slot, source) in sources.iter().enumerate() {
                nodes[node_index[source.as_str()]]
                    .edge_writes
                    .push(EdgeWrite::Barrier { channel, slot });
            }
        }

        let mut triggered_by = vec![Vec::new(); channels.len()];
        for (id, node) in nodes.iter_mut().enumerate() {
            for &channel in &node.triggers {
                triggered_by[channel].push(id);
            }
            let mut names: Vec<String> = node
                .triggers
                .iter()
                .map(|&c| channels[c].name.clone())
                .collect();
            names.sort();
            node.trigger_names = names;
        }
        let mut nodes_by_name: Vec<NodeId> = (0..nodes.len()).collect();
        nodes_by_name.sort_by(|&a, &b| nodes[a].name.cmp(&nodes[b].name));
        let mut name_rank = vec![0; nodes.len()];
        for (rank, &node) in nodes_by_name.iter().enumerate() {
            name_rank[node] = rank;
        }

        Ok(Plan {
            channels,
            keys,
            nodes,
            nodes_by_name,
            name_rank,
            node_index,
            triggered_by,
        })
    }
}

/// LangGraph's compile-time checks, in LangGraph's order.
fn validate(spec: &GraphSpec) -> Result<(), PlanError> {
    // `add_node` checks names as they come; the plan re-checks so it is sound on its own.
    let mut seen: Vec<&str> = Vec::with_capacity(spec.nodes.len());
    for node in &spec.nodes {
        validate_node_name(&node.name, &seen)?;
        seen.push(&node.name);
    }
    let nodes: HashSet<&str> = seen.into_iter().collect();
    let is_node = |name: &str| nodes.contains(name);

    let mut sources: Vec<&str> = spec.edges.iter().map(|(s, _)| s.as_str()).collect();
    for (group, _) in &spec.waiting_edges {
        sources.extend(group.iter().map(String::as_str));
    }
    sources.extend(spec.branches.iter().map(|b| b.source.as_str()));
    sources.extend(
        spec.nodes
            .iter()
            .filter(|n| !n.ends.is_empty())
            .map(|n| n.name.as_str()),
    );
    for source in &sources {
        if !is_node(source) && *source != START {
            return fail(format!("Found edge starting at unknown node '{source}'"));
        }
    }
    if !sources.contains(&START) {
        return fail(
            "Graph must have an entrypoint: add at least one edge from START to another node",
        );
    }

    let mut targets: Vec<&str> = spec.edges.iter().map(|(_, t)| t.as_str()).collect();
    targets.extend(spec.waiting_edges.iter().map(|(_, t)| t.as_str()));
    for branch in &spec.branches {
        if let Some(ends) = &branch.ends {
            for end in ends {
                if !is_node(end) && end != END {
                    return fail(format!(
                        "At '{}' node, '{}' branch found unknown target '{}'",
                        branch.source, branch.name, end
                    ));
                }
            }
        }
    }
    for node in &spec.nodes {
        targets.extend(node.ends.iter().map(String::as_str));
    }
    for target in targets {
        if !is_node(target) && target != END {
            return fail(format!("Found edge ending at unknown node `{target}`"));
        }
    }
    for name in spec.interrupt_before.iter().chain(&spec.interrupt_after) {
        if name != "*" && !is_node(name) {
            return fail(format!("Interrupt node `{name}` not found"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod fuzz;

#[cfg(test)]
mod tests {
    use super::*;

    fn edge(a: &str, b: &str) -> (String, String) {
        (a.into(), b.into())
    }

    fn chain(names: &[&str]) -> GraphSpec {
        let mut spec = GraphSpec {
            nodes: names.iter().map(|n| NodeSpec::named(*n)).collect(),
            ..Default::default()
        };
        spec.edges.push(edge(START, names[0]));
        for pair in names.windows(2) {
            spec.edges.push(edge(pair[0], pair[1]));
        }
        spec.edges.push(edge(names[names.len() - 1], END));
        spec
    }

    fn error_of(spec: &GraphSpec) -> String {
        Plan::compile(spec).unwrap_err().0
    }

    #[test]
    fn chain_compiles_to_entry_channels_and_edge_writes() {
        let plan = Plan::compile(&chain(&["a", "b"])).unwrap();
        assert_eq!(plan.nodes.len(), 3);
        let a = plan.node_id("a").unwrap();
        let b = plan.node_id("b").unwrap();
        assert_eq!(plan.channels[plan.nodes[a].entry].name, "branch:to:a");
        assert_eq!(
            plan.nodes[START_NODE].edge_writes,
            vec![EdgeWrite::Trigger(plan.nodes[a].entry)]
        );
        assert_eq!(
            plan.nodes[a].edge_writes,
            vec![EdgeWrite::Trigger(plan.nodes[b].entry)]
        );
        assert!(
            plan.nodes[b].edge_writes.is_empty(),
            "edges to END write nothing"
        );
    }

    #[test]
    fn join_gets_a_barrier_channel_named_like_langgraph() {
        let mut spec = chain(&["a", "b", "c"]);
        spec.edges.retain(|(_, t)| t != "c");
        spec.edges.push(edge(START, "b"));
        spec.waiting_edges
            .push((vec!["a".into(), "b".into()], "c".into()));
        let plan = Plan::compile(&spec).unwrap();
        let c = &plan.nodes[plan.node_id("c").unwrap()];
        assert_eq!(c.trigger_names, vec!["branch:to:c", "join:a+b:c"]);
        let join = c.triggers[1];
        assert_eq!(
            plan.channels[join].kind,
            ChannelKind::Barrier {
                sources: 2,
                after_finish: false
            }
        );
        let b = &plan.nodes[plan.node_id("b").unwrap()];
        assert!(b.edge_writes.contains(&EdgeWrite::Barrier {
            channel: join,
            slot: 1
        }));
    }

    #[test]
    fn deferred_node_is_triggered_after_finish() {
        let mut spec = chain(&["a", "b"]);
        spec.nodes[1].defer = true;
        let plan = Plan::compile(&spec).unwrap();
        let b = &plan.nodes[plan.node_id("b").unwrap()];
        assert_eq!(plan.channels[b.entry].kind, ChannelKind::AfterFinish);
    }

    #[test]
    fn pull_order_is_by_name() {
        let plan = Plan::compile(&chain(&["zeta", "alpha", "mid"])).unwrap();
        let names: Vec<&str> = plan
            .nodes_by_name
            .iter()
            .map(|&n| plan.nodes[n].name.as_str())
            .collect();
        assert_eq!(names, vec!["__start__", "alpha", "mid", "zeta"]);
    }

    #[test]
    fn duplicate_edges_write_once() {
        let mut spec = chain(&["a", "b"]);
        spec.edges.push(edge("a", "b"));
        let plan = Plan::compile(&spec).unwrap();
        assert_eq!(plan.nodes[plan.node_id("a").unwrap()].edge_writes.len(), 1);
    }

    #[test]
    fn node_name_checks_match_langgraph() {
        assert_eq!(
            validate_node_name("a", &["a"]).unwrap_err().0,
            "Node `a` already present."
        );
        assert_eq!(
            validate_node_name(START, &[]).unwrap_err().0,
            "Node `__start__` is reserved."
        );
        assert_eq!(
            validate_node_name("a|b", &[]).unwrap_err().0,
            "'|' is a reserved character and is not allowed in the node names."
        );
        assert_eq!(
            validate_node_name("a:b", &[]).unwrap_err().0,
            "':' is a reserved character and is not allowed in the node names."
        );
        assert!(validate_node_name("ok", &["other"]).is_ok());
    }

    #[test]
    fn missing_entrypoint() {
        let mut spec = chain(&["a"]);
        spec.edges.retain(|(s, _)| s != START);
        assert_eq!(
            error_of(&spec),
            "Graph must have an entrypoint: add at least one edge from START to another node"
        );
    }

    #[test]
    fn unknown_source_and_target() {
        let mut spec = chain(&["a"]);
        spec.edges.push(edge("ghost", "a"));
        assert_eq!(
            error_of(&spec),
            "Found edge starting at unknown node 'ghost'"
        );
        let mut spec = chain(&["a"]);
        spec.edges.push(edge("a", "ghost"));
        assert_eq!(error_of(&spec), "Found edge ending at unknown node `ghost`");
    }

    #[test]
    fn unknown_branch_target_and_interrupt() {
        let mut spec = chain(&["a"]);
        spec.branches.push(BranchSpec {
            source: "a".into(),
            name: "route".into(),
            ends: Some(vec!["ghost".into()]),
        });
        assert_eq!(
            error_of(&spec),
            "At 'a' node, 'route' branch found unknown target 'ghost'"
        );
        let mut spec = chain(&["a"]);
        spec.interrupt_before.push("ghost".into());
        assert_eq!(error_of(&spec), "Interrupt node `ghost` not found");
    }

    #[test]
    fn command_destinations_are_targets() {
        let mut spec = chain(&["a"]);
        spec.nodes[0].ends = vec!["ghost".into()];
        assert_eq!(error_of(&spec), "Found edge ending at unknown node `ghost`");
    }
}
