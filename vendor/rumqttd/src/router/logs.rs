use super::Ack;
use slab::Slab;
use tracing::{info, trace};

use crate::protocol::{
    matches, ConnAck, ConnAckProperties, PingResp, PubAck, PubComp, PubRec, PubRel, Publish,
    PublishProperties, SubAck, UnsubAck,
};
use crate::router::{DataRequest, FilterIdx, SubscriptionMeter, Waiters};
use crate::{ConnectionId, Filter, Offset, RouterConfig, Topic};

use crate::segments::{CommitLog, Position};
use crate::Storage;
use std::collections::{HashMap, VecDeque};
use std::io;
use std::time::Instant;

type PubWithProp = (Publish, Option<PublishProperties>);

#[derive(Clone)]
pub struct PublishData {
    pub publish: Publish,
    pub properties: Option<PublishProperties>,
    pub timestamp: Instant,
    /// MQTT Workbench patch (MQTT 5 §3.8.3.1 No Local): the client id that
    /// published it (None: a will or an internal publish).
    pub origin: Option<std::sync::Arc<str>>,
}

impl From<PubWithProp> for PublishData {
    fn from((publish, properties): PubWithProp) -> Self {
        PublishData {
            publish,
            properties,
            timestamp: Instant::now(),
            origin: None,
        }
    }
}

// TODO: remove this from here
impl Storage for PublishData {
    // TODO: calculate size of publish properties as well!
    fn size(&self) -> usize {
        let publish = &self.publish;
        4 + publish.topic.len() + publish.payload.len()
    }
}

/// Stores 'device' data and 'actions' data in native commitlog
/// organized by subscription filter. Device data is replicated
/// while actions data is not
pub struct DataLog {
    pub config: RouterConfig,
    /// Native commitlog data organized by subscription. Contains
    /// device data and actions data logs.
    ///
    /// Device data is replicated while actions data is not.
    /// Also has waiters used to wake connections/replicator tracker
    /// which are caught up with all the data on 'Filter' and waiting
    /// for new data
    pub native: Slab<Data<PublishData>>,
    /// Map of subscription filter name to filter index
    filter_indexes: HashMap<Filter, FilterIdx>,
    retained_publishes: HashMap<Topic, PublishData>,
    /// List of filters associated with a topic
    publish_filters: HashMap<Topic, Vec<FilterIdx>>,
    /// MQTT Workbench patch: the filters with `+` or `#` (a topic is matched
    /// against these; a filter without wildcards matches only the topic equal
    /// to it, found in `filter_indexes`).
    /// (By index: the filter's text is its log's, not a copy per filter.)
    wildcard_filters: Vec<FilterIdx>,
}

/// MQTT Workbench patch: a filter with `+` or `#` (MQTT 3.1.1 §4.7.1) can
/// match more than the one topic equal to it.
fn has_wildcards(filter: &str) -> bool {
    filter.contains(['+', '#'])
}

impl DataLog {
    pub fn new(config: RouterConfig) -> io::Result<DataLog> {
        let mut native = Slab::new();
        let mut filter_indexes = HashMap::new();
        let retained_publishes = HashMap::new();
        let publish_filters = HashMap::new();

        let mut wildcard_filters = Vec::new();
        if let Some(warmup_filters) = config.initialized_filters.clone() {
            for filter in warmup_filters {
                let data = Data::new(&filter, &config);

                // Add commitlog to datalog and add datalog index to filter to
                // datalog index map
                let idx = native.insert(data);
                if has_wildcards(&filter) {
                    wildcard_filters.push(idx);
                }
                filter_indexes.insert(filter, idx);
            }
        }

        Ok(DataLog {
            config,
            native,
            publish_filters,
            filter_indexes,
            retained_publishes,
            wildcard_filters,
        })
    }

    pub fn meter(&mut self, filter: &str) -> Option<&mut SubscriptionMeter> {
        let data = self.native.get_mut(*self.filter_indexes.get(filter)?)?;
        data.meter.as_deref_mut()
    }

    pub fn waiters(&self, filter: &Filter) -> Option<&Waiters<DataRequest>> {
        self.native
            .get(*self.filter_indexes.get(filter)?)
            .map(|data| &data.waiters)
    }

    pub fn remove_waiters_for_id(
        &mut self,
        id: ConnectionId,
        filter: &Filter,
    ) -> Option<DataRequest> {
        // MQTT Workbench patch: a shared subscription (`$share/g/a`) reads the
        // log of `a`; and the request is the one for this filter, not the
        // connection's first parked one (`a` and `$share/g/a` share a log).
        let log = filter
            .strip_prefix("$share/")
            .and_then(|s| s.split_once('/'))
            .map_or(filter.as_str(), |(_, f)| f);
        let data = self.native.get_mut(*self.filter_indexes.get(log)?)?;
        let waiters = data.waiters.get_mut();

        waiters
            .iter()
            .position(|(conn_id, request)| *conn_id == id && request.filter == *filter)
            .and_then(|index| {
                waiters
                    .swap_remove_back(index)
                    .map(|(_, data_req)| data_req)
            })
    }

    // TODO: Currently returning a Option<Vec> instead of Option<&Vec> due to Rust borrow checker
    // limitation
    pub fn matches(&mut self, topic: &str) -> Option<Vec<usize>> {
        match &self.publish_filters.get(topic) {
            Some(v) => Some(v.to_vec()),
            None => {
                // MQTT Workbench patch: the filter equal to the topic, then the
                // wildcard ones; upstream matched the topic against every
                // filter (80,000 cars' command filters × 80,000 new status
                // topics stalled the router).
                let v: Vec<usize> = self
                    .filter_indexes
                    .get(topic)
                    .copied()
                    .into_iter()
                    .chain(
                        self.wildcard_filters.iter().copied().filter(|idx| {
                            self.native
                                .get(*idx)
                                .is_some_and(|data| matches(topic, &data.filter))
                        }),
                    )
                    .collect();

                if !v.is_empty() {
                    self.publish_filters.insert(topic.to_owned(), v.clone());
                }

                Some(v)
            }
        }
    }

    pub fn next_native_offset(&mut self, filter: &str) -> (FilterIdx, Offset) {
        let publish_filters = &mut self.publish_filters;
        let filter_indexes = &mut self.filter_indexes;

        let (filter_idx, data) = match filter_indexes.get(filter) {
            Some(idx) => (*idx, self.native.get(*idx).unwrap()),
            None => {
                let data = Data::new(filter, &self.config);

                // Add commitlog to datalog and add datalog index to filter to
                // datalog index map
                let idx = self.native.insert(data);
                self.filter_indexes.insert(filter.to_owned(), idx);

                // Match new filter to existing topics and add to publish_filters if it matches
                // MQTT Workbench patch: a filter without wildcards matches
                // only its own topic, one lookup; upstream matched every new
                // filter against every topic seen.
                if has_wildcards(filter) {
                    self.wildcard_filters.push(idx);
                    for (topic, filters) in publish_filters.iter_mut() {
                        if matches(topic, filter) {
                            filters.push(idx);
                        }
                    }
                } else if let Some(filters) = publish_filters.get_mut(filter) {
                    filters.push(idx);
                }

                (idx, self.native.get(idx).unwrap())
            }
        };

        (filter_idx, data.log.next_offset())
    }

    pub fn native_readv(
        &self,
        filter_idx: FilterIdx,
        offset: Offset,
        len: u64,
    ) -> io::Result<(Position, Vec<(PubWithProp, Offset, Option<std::sync::Arc<str>>)>)> {
        // unwrap to get index of `self.native` is fine here, because when a new subscribe packet
        // arrives in `Router::handle_device_payload`, it first calls the function
        // `next_native_offset` which creates a new commitlog if one doesn't exist. So any new
        // reads will definitely happen on a valid filter.
        let data = self.native.get(filter_idx).unwrap();
        let mut o = Vec::new();
        // TODO: `readv` is infallible but its current return type does not
        // reflect that. Consequently, this method is also infallible.
        // Encoding this information is important so that calling function
        // has more information on how this method behaves.
        let next = data.log.readv(offset, len, &mut o)?;

        let now = Instant::now();
        o.retain_mut(|(pubdata, _)| {
            // Keep data if no properties exists, which implies no message expiry!
            let Some(properties) = pubdata.properties.as_mut() else {
                return true;
            };

            // Keep data if there is no message_expiry_interval
            let Some(message_expiry_interval) = properties.message_expiry_interval.as_mut() else {
                return true;
            };

            let time_spent = (now - pubdata.timestamp).as_secs() as u32;

            let is_valid = time_spent < *message_expiry_interval;

            // ignore expired messages
            if is_valid {
                // set message_expiry_interval to (original value - time spent waiting in server)
                // ref: https://docs.oasis-open.org/mqtt/mqtt/v5.0/os/mqtt-v5.0-os.html#_Toc3901112
                *message_expiry_interval -= time_spent;
            }

            is_valid
        });

        // no need to include timestamp when returning
        let o = o
            .into_iter()
            .map(|(pubdata, offset)| {
                (
                    (pubdata.publish, pubdata.properties),
                    offset,
                    pubdata.origin,
                )
            })
            .collect();

        Ok((next, o))
    }

    pub fn shadow(&mut self, filter: &str) -> Option<PubWithProp> {
        let data = self.native.get_mut(*self.filter_indexes.get(filter)?)?;
        data.log.last().map(|p| (p.publish, p.properties))
    }

    /// This method is called when the subscriber has caught up with the commit log. In which case,
    /// instead of actively checking for commits in each `Router::run_inner` iteration, we instead
    /// wait and only try reading again when new messages have been added to the commit log. This
    /// methods converts a `DataRequest` (which actively reads the commit log in `Router::consume`)
    /// to a `Waiter` (which only reads when notified).
    pub fn park(&mut self, id: ConnectionId, request: DataRequest) {
        // calling unwrap on index here is fine, because only place this function is called is in
        // `Router::consume` method, when the status after reading from commit log of the same
        // filter as `request` is "done", that is, the subscriber has caught up. In other words,
        // there has been atleast 1 call to `native_readv` for the same filter, which means if
        // `native_readv` hasn't paniced, so this won't panic either.
        let data = self.native.get_mut(request.filter_idx).unwrap();
        data.waiters.register(id, request);
    }

    /// Cleanup a connection from all the waiters
    pub fn clean(&mut self, id: ConnectionId) -> Vec<DataRequest> {
        let mut inflight = Vec::new();
        for (_, data) in self.native.iter_mut() {
            inflight.append(&mut data.waiters.remove(id));
        }

        inflight
    }

    pub fn insert_to_retained_publishes(
        &mut self,
        publish: Publish,
        publish_properties: Option<PublishProperties>,
        topic: Topic,
    ) {
        let pub_with_props = (publish, publish_properties);
        self.retained_publishes.insert(topic, pub_with_props.into());
    }

    pub fn remove_from_retained_publishes(&mut self, topic: Topic) {
        self.retained_publishes.remove(&topic);
    }

    /// MQTT Workbench patch: the retained messages `filter` matches, each
    /// with its Message Expiry Interval lowered by the time it waited in the
    /// server (MQTT 5 §3.3.2.3.3); expired ones are removed.
    ///
    /// Upstream swept and matched every retained message on every new
    /// subscription (80,000 cars each subscribing to their own command topic
    /// beside 80,000 retained statuses: 6.4 billion matches, the router
    /// stalled), and lowered the stored interval on every read, so a message
    /// read twice expired early. Now a filter without wildcards is one
    /// lookup, and the stored interval never changes.
    pub fn read_retained_messages(&mut self, filter: &str) -> Vec<PubWithProp> {
        trace!(info = "reading retain msg", filter = &filter);
        let now = Instant::now();
        // The interval left, None once expired (Some(None): it never expires).
        let left = |p: &PublishData| -> Option<Option<u32>> {
            match p.properties.as_ref().and_then(|pr| pr.message_expiry_interval) {
                None => Some(None),
                Some(interval) => {
                    let waited = (now - p.timestamp).as_secs().min(u32::MAX as u64) as u32;
                    (waited < interval).then_some(Some(interval - waited))
                }
            }
        };
        let out = |p: &PublishData, left: Option<u32>| -> PubWithProp {
            let mut properties = p.properties.clone();
            if let (Some(pr), Some(l)) = (properties.as_mut(), left) {
                pr.message_expiry_interval = Some(l);
            }
            (p.publish.clone(), properties)
        };
        if !filter.contains(['+', '#']) {
            let Some(p) = self.retained_publishes.get(filter) else {
                return Vec::new();
            };
            return match left(p) {
                Some(l) => vec![out(p, l)],
                None => {
                    self.retained_publishes.remove(filter);
                    Vec::new()
                }
            };
        }
        self.retained_publishes.retain(|_, p| left(p).is_some());
        self.retained_publishes
            .iter()
            .filter(|(topic, _)| matches(topic, filter))
            .filter_map(|(_, p)| left(p).map(|l| out(p, l)))
            .collect()
    }
}

pub struct Data<T> {
    filter: Filter,
    pub log: CommitLog<T>,
    pub waiters: Waiters<DataRequest>,
    /// MQTT Workbench patch (memory per subscription): made at the first
    /// append; a filter nothing was published to keeps 8 bytes, not 48
    /// (its `u128` timestamp aligned every log in the slab to 16).
    meter: Option<Box<SubscriptionMeter>>,
}

impl<T> Data<T>
where
    T: Storage + Clone,
{
    pub fn new(filter: &str, router_config: &RouterConfig) -> Data<T> {
        let mut max_segment_size = router_config.max_segment_size;
        let mut max_mem_segments = router_config.max_segment_count;

        // Override segment config for selected filter
        if let Some(config) = &router_config.custom_segment {
            for (f, segment_config) in config {
                if matches(filter, f) {
                    info!("Overriding segment config for filter: {}", filter);
                    max_segment_size = segment_config.max_segment_size;
                    max_mem_segments = segment_config.max_segment_count;
                }
            }
        }

        // max_segment_size: usize, max_mem_segments: usize
        let log = CommitLog::new(max_segment_size, max_mem_segments).unwrap();

        // MQTT Workbench patch (memory per subscription): room for one
        // parked request (a subscriber caught up), not ten; a queue grown
        // from empty would take four at its first push.
        let waiters = Waiters::with_capacity(1);
        Data {
            filter: filter.to_owned(),
            log,
            waiters,
            meter: None,
        }
    }

    /// Writes to all the filters that are mapped to this publish topic
    /// and wakes up consumers that are matching this topic (if they exist)
    pub fn append(
        &mut self,
        item: T,
        notifications: &mut VecDeque<(ConnectionId, DataRequest)>,
    ) -> (Offset, &Filter) {
        let size = item.size();
        let offset = self.log.append(item);
        if let Some(mut parked) = self.waiters.take() {
            notifications.append(&mut parked);
        }

        let meter = self.meter.get_or_insert_default();
        meter.count += 1;
        meter.total_size += size;

        (offset, &self.filter)
    }
}

/// Acks log for a subscription
#[derive(Debug)]
pub struct AckLog {
    // Committed acks per connection. First pkid, last pkid, data
    committed: VecDeque<Ack>,
    // Recorded qos 2 publishes
    recorded: VecDeque<(Publish, Option<PublishProperties>)>,
}

impl AckLog {
    /// New log
    pub fn new() -> AckLog {
        // MQTT Workbench patch: grow as used (~44 KiB a connection up front otherwise).
        AckLog {
            committed: VecDeque::new(),
            recorded: VecDeque::new(),
        }
    }

    pub fn connack(&mut self, id: ConnectionId, ack: ConnAck, props: Option<ConnAckProperties>) {
        let ack = Ack::ConnAck(id, ack, props);
        self.committed.push_back(ack);
    }

    pub fn suback(&mut self, ack: SubAck) {
        let ack = Ack::SubAck(ack);
        self.committed.push_back(ack);
    }

    pub fn puback(&mut self, ack: PubAck) {
        let ack = Ack::PubAck(ack);
        self.committed.push_back(ack);
    }

    pub fn pubrec(&mut self, publish: Publish, props: Option<PublishProperties>, ack: PubRec) {
        let ack = Ack::PubRec(ack);
        // MQTT Workbench patch (MQTT 3.1.1 §4.3.3): a resent PUBLISH (DUP)
        // with a packet id still held replaces the held one: delivered once.
        self.recorded.retain(|(p, _)| p.pkid != publish.pkid);
        self.recorded.push_back((publish, props));
        self.committed.push_back(ack);
    }

    pub fn pubrel(&mut self, ack: PubRel) {
        let ack = Ack::PubRel(ack);
        self.committed.push_back(ack);
    }

    pub fn pubcomp(&mut self, ack: PubComp) -> Option<(Publish, Option<PublishProperties>)> {
        // MQTT Workbench patch (MQTT 3.1.1 §4.3.3, MQTT 5 §4.3.3): the message
        // this PUBREL releases, by packet id (upstream took the oldest); a
        // PUBREL for an id the session does not hold is answered all the same.
        let pkid = ack.pkid;
        let at = self.recorded.iter().position(|(p, _)| p.pkid == pkid);
        let mut ack = ack;
        if at.is_none() {
            ack.reason = crate::protocol::PubCompReason::PacketIdentifierNotFound;
        }
        self.committed.push_back(Ack::PubComp(ack));
        self.recorded.remove(at?)
    }

    /// MQTT Workbench patch (MQTT 3.1.1 §4.1, MQTT 5 §4.1): QoS 2 messages
    /// received but not yet released are part of the session state.
    pub fn take_recorded(&mut self) -> VecDeque<(Publish, Option<PublishProperties>)> {
        std::mem::take(&mut self.recorded)
    }

    /// MQTT Workbench patch: QoS 2 messages received and not yet released.
    pub fn recorded_len(&self) -> usize {
        self.recorded.len()
    }

    /// Whether a QoS 2 message with this packet id is held (a resend).
    pub fn holds(&self, pkid: u16) -> bool {
        self.recorded.iter().any(|(p, _)| p.pkid == pkid)
    }

    pub fn restore_recorded(&mut self, recorded: VecDeque<(Publish, Option<PublishProperties>)>) {
        self.recorded = recorded;
    }

    pub fn pingresp(&mut self, ack: PingResp) {
        let ack = Ack::PingResp(ack);
        self.committed.push_back(ack);
    }

    pub fn unsuback(&mut self, ack: UnsubAck) {
        let ack = Ack::UnsubAck(ack);
        self.committed.push_back(ack);
    }

    pub fn readv(&mut self) -> &mut VecDeque<Ack> {
        &mut self.committed
    }
}

#[cfg(test)]
mod test {
    use super::DataLog;
    use crate::router::shared_subs::Strategy;
    use crate::RouterConfig;

    #[test]
    fn publish_filters_updating_correctly_on_new_topic_subscription() {
        let config = RouterConfig {
            max_segment_size: 1024,
            max_connections: 10,
            max_segment_count: 10,
            max_outgoing_packet_count: 1024,
            custom_segment: None,
            initialized_filters: None,
            shared_subscriptions_strategy: Strategy::RoundRobin,
        };
        let mut data = DataLog::new(config).unwrap();
        data.next_native_offset("topic/a");
        data.matches("topic/a");

        data.next_native_offset("topic/+");

        assert_eq!(data.publish_filters.get("topic/a").unwrap().len(), 2);
    }

    /// MQTT Workbench patch: filters without wildcards are looked up, the
    /// others matched; both kinds reach a topic, whichever came first.
    #[test]
    fn exact_and_wildcard_filters_both_match_in_either_order() {
        let config = RouterConfig {
            max_segment_size: 1024,
            max_connections: 10,
            max_segment_count: 10,
            max_outgoing_packet_count: 1024,
            custom_segment: None,
            initialized_filters: None,
            shared_subscriptions_strategy: Strategy::RoundRobin,
        };
        let mut data = DataLog::new(config).unwrap();
        let (exact, _) = data.next_native_offset("cars/1/cmd");
        let (plus, _) = data.next_native_offset("cars/+/cmd");
        data.next_native_offset("cars/2/cmd");
        let mut m = data.matches("cars/1/cmd").unwrap();
        m.sort();
        assert_eq!(m, vec![exact, plus]);
        // A filter added after the topic was seen joins its cached list.
        let (hash, _) = data.next_native_offset("cars/#");
        let (late, _) = data.next_native_offset("cars/1/cmd/x");
        let mut m = data.matches("cars/1/cmd").unwrap();
        m.sort();
        assert_eq!(m, vec![exact, plus, hash]);
        assert!(!m.contains(&late));
        assert_eq!(data.matches("other").unwrap(), Vec::<usize>::new());
    }

    #[test]
    fn publish_filters_updating_correctly_on_new_publish() {
        let config = RouterConfig {
            max_segment_size: 1024,
            max_connections: 10,
            max_segment_count: 10,
            max_outgoing_packet_count: 1024,
            custom_segment: None,
            initialized_filters: None,
            shared_subscriptions_strategy: Strategy::RoundRobin,
        };
        let mut data = DataLog::new(config).unwrap();
        data.next_native_offset("+/+");

        data.matches("topic/a");

        assert_eq!(data.publish_filters.get("topic/a").unwrap().len(), 1);
    }

    //     #[test]
    //     fn appends_are_written_to_correct_commitlog() {
    //         pretty_env_logger::init();
    //         let config = RouterConfig {
    //             instant_ack: true,
    //             max_segment_size: 1024,
    //             max_connections: 10,
    //             max_mem_segments: 10,
    //             max_disk_segments: 0,
    //             max_read_len: 1024,
    //             log_dir: None,
    //             dynamic_log: true,
    //         };

    //         let mut data = DataLog::new(config).unwrap();
    //         data.next_native_offset("/devices/2321/actions");
    //         for i in 0..2 {
    //             let publish = Publish::new("/devices/2321/events/imu/jsonarray", QoS::AtLeastOnce, vec![1, 2, 3]);
    //             let v = data.native_append(publish);
    //             dbg!(v);
    //         }

    //         for i in 0..2 {
    //             let publish = Publish::new("/devices/2321/actions", QoS::AtLeastOnce, vec![1, 2, 3]);
    //             let v = data.native_append(publish);
    //             dbg!(v);
    //         }
    //     }
}
