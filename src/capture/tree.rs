//! The topic tree, kept on ingest: one node per topic level, with message and
//! topic counts per subtree, so the window draws it without rebuilding it.

use std::collections::BTreeMap;
use std::sync::Arc;

/// One level of a topic path ("drones", "drones/7", "drones/7/flight").
#[derive(Debug, Clone, Default)]
pub struct TopicNode {
    /// This level's name (the part between slashes).
    pub name: Arc<str>,
    pub parent: Option<usize>,
    /// Children by name (lookup).
    pub children: BTreeMap<Arc<str>, usize>,
    /// Children in natural order (`car-2` before `car-10`), as the tree shows them.
    pub ordered: Vec<usize>,
    /// Set when this path is itself a topic.
    pub topic: Option<Arc<str>>,
    /// Messages in this subtree (published plus broker-originated deliveries).
    pub total: u64,
    /// Topics in this subtree (this node included).
    pub topics: u32,
    /// 0 for the first level.
    pub depth: u16,
}

/// Natural order: runs of digits compare as numbers (`car-2` < `car-10`),
/// the rest as text; equal numbers with more leading zeros go after.
pub fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let run = |s: &[u8]| s.iter().take_while(|c| c.is_ascii_digit()).count();
                let (na, nb) = (run(a), run(b));
                let (da, db) = (&a[..na], &b[..nb]);
                let trim = |d: &[u8]| {
                    let z = d.iter().take_while(|&&c| c == b'0').count();
                    d.len() - z
                };
                let (sa, sb) = (&da[da.len() - trim(da)..], &db[db.len() - trim(db)..]);
                let o = sa.len().cmp(&sb.len()).then(sa.cmp(sb)).then(na.cmp(&nb));
                if o != Ordering::Equal {
                    return o;
                }
                a = &a[na..];
                b = &b[nb..];
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(y);
                }
                a = &a[1..];
                b = &b[1..];
            }
        }
    }
}

/// See the module docs. Node 0 is the (unnamed) root.
#[derive(Debug, Clone)]
pub struct TopicTree {
    nodes: Vec<TopicNode>,
    /// Bumped when a node is added (views cache their row lists by it).
    pub structure_changes: u64,
}

impl Default for TopicTree {
    fn default() -> Self {
        TopicTree {
            nodes: vec![TopicNode::default()],
            structure_changes: 0,
        }
    }
}

impl TopicTree {
    pub const ROOT: usize = 0;

    pub fn node(&self, i: usize) -> Option<&TopicNode> {
        self.nodes.get(i)
    }

    pub fn root(&self) -> &TopicNode {
        &self.nodes[Self::ROOT]
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.len() <= 1
    }

    /// Count one message on `topic`, whose node `node` holds once known:
    /// its levels are looked up the first time only.
    pub fn count(&mut self, node: &mut Option<usize>, topic: &str) {
        let Some(leaf) = *node else {
            *node = Some(self.add(topic));
            return;
        };
        let mut at = Some(leaf);
        while let Some(i) = at {
            self.nodes[i].total += 1;
            at = self.nodes[i].parent;
        }
    }

    /// Count one message on `topic`, adding its levels the first time.
    /// Returns the topic's node.
    pub fn add(&mut self, topic: &str) -> usize {
        let mut at = Self::ROOT;
        self.nodes[at].total += 1;
        let mut path = Vec::new();
        for (depth, part) in topic.split('/').enumerate() {
            path.push(at);
            at = match self.nodes[at].children.get(part) {
                Some(&child) => child,
                None => {
                    let name: Arc<str> = Arc::from(part);
                    let child = self.nodes.len();
                    self.nodes.push(TopicNode {
                        name: name.clone(),
                        parent: Some(at),
                        depth: depth as u16,
                        ..TopicNode::default()
                    });
                    let nodes = &self.nodes;
                    let k = nodes[at]
                        .ordered
                        .partition_point(|&c| natural_cmp(&nodes[c].name, &name).is_lt());
                    self.nodes[at].ordered.insert(k, child);
                    self.nodes[at].children.insert(name, child);
                    self.structure_changes += 1;
                    child
                }
            };
            self.nodes[at].total += 1;
        }
        if self.nodes[at].topic.is_none() {
            self.nodes[at].topic = Some(Arc::from(topic));
            self.nodes[at].topics += 1;
            for p in path {
                self.nodes[p].topics += 1;
            }
            self.structure_changes += 1;
        }
        at
    }

    /// Every node on the path from the root to `i` (root excluded), outermost first.
    pub fn ancestors(&self, i: usize) -> Vec<usize> {
        let mut out = Vec::new();
        let mut at = self.nodes.get(i).and_then(|n| n.parent);
        while let Some(p) = at {
            if p != Self::ROOT {
                out.push(p);
            }
            at = self.nodes[p].parent;
        }
        out.reverse();
        out
    }

    /// Nodes that are topics, with their index.
    pub fn topic_nodes(&self) -> impl Iterator<Item = (usize, &Arc<str>)> {
        self.nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| n.topic.as_ref().map(|t| (i, t)))
    }
}

#[cfg(test)]
mod natural_order {
    use super::*;

    #[test]
    fn numbers_in_names_sort_as_numbers() {
        let mut names = [
            "car-10", "car-2", "car-1", "car-02", "bus", "car-", "car-100a", "car-100",
        ];
        names.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            names,
            [
                "bus", "car-", "car-1", "car-2", "car-02", "car-10", "car-100", "car-100a"
            ]
        );
        let mut t = TopicTree::default();
        for k in [10, 2, 1, 33, 3] {
            t.add(&format!("fleet/car-{k}/speed"));
        }
        let fleet = t.node(t.root().ordered[0]).unwrap();
        let shown: Vec<_> = fleet
            .ordered
            .iter()
            .map(|&c| t.node(c).unwrap().name.to_string())
            .collect();
        assert_eq!(shown, ["car-1", "car-2", "car-3", "car-10", "car-33"]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_messages_and_topics_per_subtree() {
        let mut t = TopicTree::default();
        t.add("a/b/c");
        t.add("a/b/c");
        t.add("a/b");
        t.add("a/x");
        let a = t.root().children["a"];
        let b = t.node(a).unwrap().children["b"];
        assert_eq!(t.node(a).unwrap().total, 4);
        assert_eq!(t.node(a).unwrap().topics, 3);
        assert_eq!(t.node(b).unwrap().total, 3);
        assert_eq!(t.node(b).unwrap().topic.as_deref(), Some("a/b"));
        let c = t.node(b).unwrap().children["c"];
        assert_eq!(t.ancestors(c), vec![a, b]);
        let before = t.structure_changes;
        t.add("a/b/c");
        assert_eq!(t.structure_changes, before, "a known topic adds no node");
    }

    #[test]
    fn counting_through_a_remembered_node_counts_like_adding() {
        let (mut added, mut counted) = (TopicTree::default(), TopicTree::default());
        let mut nodes = std::collections::HashMap::new();
        for topic in ["a/b/c", "a/b/c", "a/b", "a/x", "a/b/c", "z"] {
            added.add(topic);
            counted.count(nodes.entry(topic).or_insert(None), topic);
        }
        let totals = |t: &TopicTree| {
            (0..t.len())
                .map(|i| t.node(i).unwrap().total)
                .collect::<Vec<_>>()
        };
        assert_eq!(totals(&counted), totals(&added));
        assert_eq!(counted.root().total, 6);
        let a = counted.root().children["a"];
        assert_eq!(counted.node(a).unwrap().topics, 3);
    }
}
