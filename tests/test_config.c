/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the daemon's configuration parser (src/agentsyncd/config.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>

#include "daemonutil.h"
#include "testutil.h"
#include "agentsync/agentsync.h"
#include "agentsyncd/config.h"

/* Parses `json` (with node id "me" unless the text has one), expecting success. */
static ags_config *parse_ok(const char *json, const ags_config_overrides *ov)
{
	ags_config *c = NULL;
	ags_error err;
	ags_error_clear(&err);
	int rc = ags_config_parse(json, strlen(json), ov, &c, &err);
	if (rc != 0)
		fail_msg("parse failed (%s): %s: %s", ags_strerror(rc), err.field, err.message);
	assert_non_null(c);
	return c;
}

/* Parses `json`, expecting `code` with err.field == field and `msg` in err.message. */
static void parse_bad(const char *json, int code, const char *field, const char *msg)
{
	ags_config *c = (ags_config *)1;
	ags_error err;
	ags_error_clear(&err);
	int rc = ags_config_parse(json, strlen(json), NULL, &c, &err);
	if (rc != code || strcmp(err.field, field) != 0 || !strstr(err.message, msg))
		fail_msg("for %s\n  expected %s at \"%s\" with \"%s\"\n  got %s at \"%s\": %s",
		         json, ags_strerror(code), field, msg, ags_strerror(rc), err.field,
		         err.message);
	assert_null(c);
	assert_int_equal(err.code, code);
}

static char *seed_text(void)
{
	const char *src = getenv("AGS_SOURCE_DIR");
	char *path = tu_sprintf("%s/tests/data/seed-quic.json", src ? src : "..");
	char *s = tu_read_file(path, NULL);
	if (!s)
		fail_msg("cannot read %s", path);
	free(path);
	return s;
}

static void seed_config_is_accepted_verbatim(void **state)
{
	(void)state;
	char *json = seed_text();
	ags_config_overrides ov;
	ags_config_overrides_init(&ov);
	ov.node_id = "agent-0";
	ags_config *c = parse_ok(json, &ov);
	const ags_node_config *n = &c->node;
	assert_int_equal(c->n_warnings, 0);
	assert_int_equal(c->enabled, 1);
	assert_int_equal(n->port, 4433);
	assert_string_equal(n->host, "0.0.0.0");
	assert_string_equal(n->node_id, "agent-0");
	assert_int_equal(n->n_peers, 2);
	assert_string_equal(n->peers[0].id, "agent-1");
	assert_string_equal(n->peers[0].address, "192.168.1.10");
	assert_int_equal(n->peers[0].port, 4433);
	assert_int_equal(n->peers[0].priority, 1);
	assert_string_equal(n->peers[1].id, "agent-2");
	assert_string_equal(n->peers[1].address, "192.168.1.11");
	assert_int_equal(n->peers[1].priority, 2);
	assert_int_equal(n->sync_interval_ms, 1000);
	assert_int_equal(n->batch_size, 100);
	assert_int_equal(n->compression, 1);
	assert_string_equal(n->tls.cert, "/path/to/cert.pem");
	assert_string_equal(n->tls.key, "/path/to/key.pem");
	assert_string_equal(n->tls.ca, "/path/to/ca.pem");
	assert_int_equal(n->tls.reject_unauthorized, 1);
	assert_int_equal(c->tls_from_file, 1);
	assert_int_equal(n->retry.max_attempts, 3);
	assert_int_equal(n->retry.base_delay_ms, 1000);
	assert_int_equal(n->retry.max_delay_ms, 10000);
	assert_true(n->retry.backoff_multiplier == 2.0);
	/* Defaults for what the seed does not say. */
	assert_string_equal(c->api.listen, AGS_CONFIG_API_LISTEN_DEFAULT);
	assert_string_equal(c->api.host, "127.0.0.1");
	assert_int_equal(c->api.port, 7433);
	assert_null(c->api.token);
	assert_int_equal(c->log.format, AGS_LOG_FORMAT_TEXT);
	assert_int_equal(c->log.level, AGS_LOG_INFO);
	assert_int_equal(n->busy_poll_us, 200);
	ags_config_del(c);
	free(json);
}

static void seed_config_without_node_id_names_the_key(void **state)
{
	(void)state;
	char *json = seed_text();
	parse_bad(json, AGS_ERR_CONFIG, "quic.nodeId", "required");
	ags_config *c = NULL;
	ags_error err;
	assert_int_equal(ags_config_parse(json, strlen(json), NULL, &c, &err), AGS_ERR_CONFIG);
	assert_non_null(strstr(err.message, "--node-id"));
	assert_non_null(strstr(err.message, "host name"));
	free(json);
}

static void every_key_is_read(void **state)
{
	(void)state;
	const char *json =
	    "{\"quic\":{\"enabled\":false,\"port\":0,\"host\":\"::1\",\"nodeId\":\"n1\","
	    "\"dataDir\":\"d/x\",\"tenant\":\"acme\",\"allow\":[\"a\",\"b.c\"],\"window\":8,"
	    "\"peers\":[{\"id\":\"p\",\"address\":\"localhost\",\"port\":1}],"
	    "\"syncInterval\":5,\"batchSize\":7,\"compression\":false,"
	    "\"tls\":{\"cert\":\"c.pem\",\"key\":\"k.pem\",\"rejectUnauthorized\":false},"
	    "\"retry\":{\"maxAttempts\":9,\"baseDelay\":10,\"maxDelay\":10,"
	    "\"backoffMultiplier\":1.5},"
	    "\"api\":{\"listen\":\"[::1]:0\",\"token\":\"s3cret\"},"
	    "\"limits\":{\"maxPatternBytes\":4096,\"maxFrameBytes\":65536},"
	    "\"rateLimit\":{\"patternsPerSecond\":50,\"bytesPerSecond\":1.5e6},"
	    "\"filter\":{\"types\":[\"t1\"],\"tags\":[\"x\",\"y\"]},"
	    "\"healthInterval\":1000,\"statelessRetry\":true,\"idleTimeout\":2000,"
	    "\"keepAlive\":0,\"fsync\":true,\"busyPoll\":0,\"log\":{\"format\":\"json\",\"level\":"
	    "\"debug\"},"
	    "\"hub\":{\"enabled\":false}}}";
	ags_config *c = parse_ok(json, NULL);
	const ags_node_config *n = &c->node;
	assert_int_equal(c->n_warnings, 0);
	assert_int_equal(c->enabled, 0);
	assert_int_equal(n->port, 0);
	assert_string_equal(n->host, "::1");
	assert_string_equal(n->node_id, "n1");
	assert_string_equal(n->data_dir, "d/x");
	assert_string_equal(n->tenant, "acme");
	assert_int_equal(n->n_allowed_ids, 2);
	assert_string_equal(n->allowed_ids[1], "b.c");
	assert_int_equal(n->window, 8);
	assert_int_equal(n->n_peers, 1);
	assert_string_equal(n->peers[0].address, "localhost");
	assert_int_equal(n->peers[0].priority, 0);
	assert_int_equal(n->sync_interval_ms, 5);
	assert_int_equal(n->batch_size, 7);
	assert_int_equal(n->compression, 0);
	assert_string_equal(n->tls.cert, "c.pem");
	assert_null(n->tls.ca);
	assert_int_equal(n->tls.reject_unauthorized, 0);
	assert_int_equal(n->retry.max_attempts, 9);
	assert_true(n->retry.backoff_multiplier == 1.5);
	assert_string_equal(c->api.listen, "[::1]:0");
	assert_string_equal(c->api.host, "::1");
	assert_int_equal(c->api.port, 0);
	assert_string_equal(c->api.token, "s3cret");
	assert_int_equal(n->max_pattern_bytes, 4096);
	assert_int_equal(n->max_frame_bytes, 65536);
	assert_true(n->rate_patterns_per_s == 50);
	assert_true(n->rate_bytes_per_s == 1.5e6);
	assert_int_equal(n->n_filter_types, 1);
	assert_string_equal(n->filter_types[0], "t1");
	assert_int_equal(n->n_filter_tags, 2);
	assert_string_equal(n->filter_tags[1], "y");
	assert_int_equal(n->health_interval_ms, 1000);
	assert_int_equal(n->stateless_retry, 1);
	assert_int_equal(n->idle_timeout_ms, 2000);
	assert_int_equal(n->keepalive_ms, 0);
	assert_int_equal(n->fsync_full, 1);
	assert_int_equal(n->busy_poll_us, 0);
	assert_int_equal(c->log.format, AGS_LOG_FORMAT_JSON);
	assert_int_equal(c->log.level, AGS_LOG_DEBUG);
	ags_config_del(c);
}

static void unknown_keys_are_warnings(void **state)
{
	(void)state;
	const char *json = "{\"other\":1,\"quic\":{\"nodeId\":\"a\",\"foo\":true,"
	                   "\"tls\":{\"bar\":1},\"peers\":[{\"id\":\"b\",\"address\":\"x\","
	                   "\"port\":2,\"weight\":3}]}}";
	ags_config *c = parse_ok(json, NULL);
	assert_int_equal(c->n_warnings, 4);
	assert_string_equal(c->warnings[0], "other: unknown key, ignored");
	assert_string_equal(c->warnings[1], "quic.foo: unknown key, ignored");
	assert_string_equal(c->warnings[2], "quic.tls.bar: unknown key, ignored");
	assert_string_equal(c->warnings[3], "quic.peers[0].weight: unknown key, ignored");
	ags_config_del(c);
}

/* Issue 15.9: a likely typo of a known key gets the key it is close to. */
static void mistyped_keys_get_a_suggestion(void **state)
{
	(void)state;
	const char *json =
	    "{\"qiuc\":1,\"quic\":{\"nodeId\":\"a\",\"syncIntervall\":5,"
	    "\"SyncInterval\":5,\"tls\":{\"cer\":\"x\"},\"retry\":{\"maxDelya\":1},"
	    "\"peers\":[{\"id\":\"b\",\"address\":\"x\",\"adress\":\"x\",\"port\":2}]}}";
	ags_config *c = parse_ok(json, NULL);
	assert_int_equal(c->n_warnings, 6);
	assert_string_equal(c->warnings[0], "qiuc: unknown key, ignored; did you mean quic?");
	assert_string_equal(c->warnings[1], "quic.syncIntervall: unknown key, ignored; did you "
	                                    "mean quic.syncInterval?");
	assert_string_equal(c->warnings[2], "quic.SyncInterval: unknown key, ignored; did you "
	                                    "mean quic.syncInterval?");
	assert_string_equal(c->warnings[3],
	                    "quic.tls.cer: unknown key, ignored; did you mean quic.tls.cert?");
	assert_string_equal(c->warnings[4], "quic.retry.maxDelya: unknown key, ignored; did you "
	                                    "mean quic.retry.maxDelay?");
	assert_string_equal(c->warnings[5], "quic.peers[0].adress: unknown key, ignored; did you "
	                                    "mean quic.peers[0].address?");
	ags_config_del(c);
}

/* Issue 17.7: an API reachable from the network without a token is said, at load. */
static void open_api_without_token_is_a_warning(void **state)
{
	(void)state;
	ags_config *c =
	    parse_ok("{\"quic\":{\"nodeId\":\"a\",\"api\":{\"listen\":\"0.0.0.0:7433\"}}}", NULL);
	assert_int_equal(c->n_warnings, 1);
	assert_non_null(strstr(c->warnings[0], "quic.api.listen: 0.0.0.0:7433 is not a loopback "
	                                       "address and quic.api.token is not set"));
	ags_config_del(c);
	static const char *const quiet[] = {
	    "{\"quic\":{\"nodeId\":\"a\",\"api\":{\"listen\":\"0.0.0.0:7433\",\"token\":\"t\"}}}",
	    "{\"quic\":{\"nodeId\":\"a\",\"api\":{\"listen\":\"127.0.0.2:7433\"}}}",
	    "{\"quic\":{\"nodeId\":\"a\",\"api\":{\"listen\":\"[::1]:7433\"}}}",
	    "{\"quic\":{\"nodeId\":\"a\"}}",
	};
	for (size_t i = 0; i < sizeof(quiet) / sizeof(quiet[0]); i++) {
		c = parse_ok(quiet[i], NULL);
		assert_int_equal(c->n_warnings, 0);
		ags_config_del(c);
	}
}

struct bad_case {
	const char *json;
	int code;
	const char *field;
	const char *msg;
};

#define Q(body) "{\"quic\":{\"nodeId\":\"me\"," body "}}"

static void every_error_names_its_path(void **state)
{
	(void)state;
	static const struct bad_case cases[] = {
	    {"[1]", AGS_ERR_CONFIG, "(root)", "must be an object"},
	    {"{}", AGS_ERR_CONFIG, "quic", "required"},
	    {"{\"quic\":3}", AGS_ERR_CONFIG, "quic", "must be an object, got 3"},
	    {"{\"quic\":{},\"quic\":{}}", AGS_ERR_CONFIG, "quic", "duplicate key"},
	    {Q("\"port\":70000"), AGS_ERR_CONFIG, "quic.port",
	     "must be an integer from 0 to 65535, got 70000"},
	    {Q("\"port\":\"4433\""), AGS_ERR_CONFIG, "quic.port", "got \"4433\""},
	    {Q("\"port\":-1"), AGS_ERR_CONFIG, "quic.port", "got -1"},
	    {Q("\"port\":1.5"), AGS_ERR_CONFIG, "quic.port", "got 1.5"},
	    {Q("\"port\":1,\"port\":2"), AGS_ERR_CONFIG, "quic.port", "duplicate key"},
	    {Q("\"enabled\":1"), AGS_ERR_CONFIG, "quic.enabled", "must be true or false, got 1"},
	    {Q("\"host\":\"example.com\""), AGS_ERR_CONFIG, "quic.host",
	     "must be an IPv4 or IPv6 address"},
	    {Q("\"host\":null"), AGS_ERR_CONFIG, "quic.host", "got null"},
	    {Q("\"syncInterval\":0"), AGS_ERR_CONFIG, "quic.syncInterval", "from 1 to"},
	    {Q("\"batchSize\":true"), AGS_ERR_CONFIG, "quic.batchSize", "got true"},
	    {Q("\"compression\":\"gzip\""), AGS_ERR_CONFIG, "quic.compression", "true or false"},
	    {Q("\"peers\":{}"), AGS_ERR_CONFIG, "quic.peers", "must be an array of peer objects"},
	    {Q("\"peers\":[3]"), AGS_ERR_CONFIG, "quic.peers[0]", "must be an object"},
	    {Q("\"peers\":[{\"id\":\"a\",\"address\":\"x\",\"port\":1},"
	       "{\"id\":\"b\",\"address\":\"y\",\"port\":70000}]"),
	     AGS_ERR_CONFIG, "quic.peers[1].port", "must be an integer from 1 to 65535, got 70000"},
	    {Q("\"peers\":[{\"id\":\"a\",\"address\":\"x\",\"port\":0}]"), AGS_ERR_CONFIG,
	     "quic.peers[0].port", "from 1 to 65535, got 0"},
	    {Q("\"peers\":[{\"id\":\"a b\",\"address\":\"x\",\"port\":1}]"), AGS_ERR_CONFIG,
	     "quic.peers[0].id", "must be an id"},
	    {Q("\"peers\":[{\"address\":\"x\",\"port\":1}]"), AGS_ERR_CONFIG, "quic.peers[0].id",
	     "required"},
	    {Q("\"peers\":[{\"id\":\"a\",\"port\":1}]"), AGS_ERR_CONFIG, "quic.peers[0].address",
	     "required"},
	    {Q("\"peers\":[{\"id\":\"a\",\"address\":\"x\"}]"), AGS_ERR_CONFIG,
	     "quic.peers[0].port", "required"},
	    {Q("\"peers\":[{\"id\":\"a\",\"address\":\"\",\"port\":1}]"), AGS_ERR_CONFIG,
	     "quic.peers[0].address", "must not be empty"},
	    {Q("\"peers\":[{\"id\":\"a\",\"address\":\"x\",\"port\":1,\"priority\":-2}]"),
	     AGS_ERR_CONFIG, "quic.peers[0].priority", "got -2"},
	    {Q("\"peers\":[{\"id\":\"a\",\"address\":\"x\",\"port\":1},"
	       "{\"id\":\"a\",\"address\":\"y\",\"port\":2}]"),
	     AGS_ERR_CONFIG, "quic.peers[1].id", "duplicate peer id \"a\""},
	    {Q("\"peers\":[{\"id\":\"me\",\"address\":\"x\",\"port\":1}]"), AGS_ERR_CONFIG,
	     "quic.peers[0].id", "this node's own id"},
	    {Q("\"tls\":[]"), AGS_ERR_CONFIG, "quic.tls", "must be an object, got an array"},
	    {Q("\"tls\":{\"cert\":5}"), AGS_ERR_CONFIG, "quic.tls.cert", "must be a string, got 5"},
	    {Q("\"tls\":{\"rejectUnauthorized\":\"yes\"}"), AGS_ERR_CONFIG,
	     "quic.tls.rejectUnauthorized", "true or false"},
	    {Q("\"tls\":{\"cert\":\"c\",\"ca\":\"a\"}"), AGS_ERR_CONFIG, "quic.tls.key",
	     "required when tls.cert is set"},
	    {Q("\"tls\":{\"key\":\"k\"}"), AGS_ERR_CONFIG, "quic.tls.cert", "required"},
	    {Q("\"tls\":{\"cert\":\"c\",\"key\":\"k\"}"), AGS_ERR_CONFIG, "quic.tls.ca",
	     "rejectUnauthorized"},
	    {Q("\"retry\":{\"maxAttempts\":0}"), AGS_ERR_CONFIG, "quic.retry.maxAttempts", "got 0"},
	    {Q("\"retry\":{\"backoffMultiplier\":0.5}"), AGS_ERR_CONFIG,
	     "quic.retry.backoffMultiplier", "must be a number from 1 to 1000, got 0.5"},
	    {Q("\"retry\":{\"baseDelay\":500,\"maxDelay\":100}"), AGS_ERR_CONFIG,
	     "quic.retry.maxDelay", "at least retry.baseDelay (500), got 100"},
	    {"{\"quic\":{\"nodeId\":\"-x\"}}", AGS_ERR_CONFIG, "quic.nodeId", "must be an id"},
	    {"{\"quic\":{\"nodeId\":\"\"}}", AGS_ERR_CONFIG, "quic.nodeId", "must be an id"},
	    {"{\"quic\":{\"nodeId\":\"a\\u0000b\"}}", AGS_ERR_CONFIG, "quic.nodeId",
	     "must be an id"},
	    {Q("\"dataDir\":\"\""), AGS_ERR_CONFIG, "quic.dataDir", "must not be empty"},
	    {Q("\"dataDir\":\"a\\u0000b\""), AGS_ERR_CONFIG, "quic.dataDir", "NUL"},
	    {Q("\"tenant\":\"a/b\""), AGS_ERR_CONFIG, "quic.tenant", "must be an id"},
	    {Q("\"allow\":\"a\""), AGS_ERR_CONFIG, "quic.allow", "must be an array of ids"},
	    {Q("\"allow\":[\"a\",7]"), AGS_ERR_CONFIG, "quic.allow[1]", "got 7"},
	    {Q("\"window\":0"), AGS_ERR_CONFIG, "quic.window", "from 1 to 65536"},
	    {Q("\"api\":{\"listen\":\"7433\"}"), AGS_ERR_CONFIG, "quic.api.listen", "HOST:PORT"},
	    {Q("\"api\":{\"listen\":\"127.0.0.1:99999\"}"), AGS_ERR_CONFIG, "quic.api.listen",
	     "got \"127.0.0.1:99999\""},
	    {Q("\"api\":{\"listen\":\"::1:80\"}"), AGS_ERR_CONFIG, "quic.api.listen", "[::1]"},
	    {Q("\"api\":{\"token\":\"\"}"), AGS_ERR_CONFIG, "quic.api.token", "must not be empty"},
	    {Q("\"api\":5"), AGS_ERR_CONFIG, "quic.api", "must be an object"},
	    {Q("\"limits\":{\"maxPatternBytes\":10}"), AGS_ERR_CONFIG,
	     "quic.limits.maxPatternBytes", "from 256 to 67108864, got 10"},
	    {Q("\"limits\":{\"maxPatternBytes\":131072,\"maxFrameBytes\":65536}"), AGS_ERR_CONFIG,
	     "quic.limits.maxFrameBytes", "at least limits.maxPatternBytes (131072)"},
	    /* Under the wire's floor (docs/PROTOCOL.md, Frames): a peer would refuse the HELLO. */
	    {Q("\"limits\":{\"maxPatternBytes\":4096,\"maxFrameBytes\":65535}"), AGS_ERR_CONFIG,
	     "quic.limits.maxFrameBytes", "from 65536 to 67108864, got 65535"},
	    {Q("\"rateLimit\":{\"bytesPerSecond\":-1}"), AGS_ERR_CONFIG,
	     "quic.rateLimit.bytesPerSecond", "got -1"},
	    {Q("\"filter\":{\"types\":[\"\"]}"), AGS_ERR_CONFIG, "quic.filter.types[0]",
	     "must not be empty"},
	    {Q("\"filter\":{\"tags\":\"x\"}"), AGS_ERR_CONFIG, "quic.filter.tags",
	     "array of strings"},
	    {Q("\"healthInterval\":1"), AGS_ERR_CONFIG, "quic.healthInterval", "from 100"},
	    {Q("\"statelessRetry\":0"), AGS_ERR_CONFIG, "quic.statelessRetry", "true or false"},
	    {Q("\"idleTimeout\":\"30s\""), AGS_ERR_CONFIG, "quic.idleTimeout", "got \"30s\""},
	    {Q("\"keepAlive\":1e3"), AGS_ERR_CONFIG, "quic.keepAlive", "must be an integer"},
	    {Q("\"fsync\":\"full\""), AGS_ERR_CONFIG, "quic.fsync", "true or false"},
	    {Q("\"busyPoll\":100001"), AGS_ERR_CONFIG, "quic.busyPoll", "100000"},
	    {Q("\"log\":{\"format\":\"xml\"}"), AGS_ERR_CONFIG, "quic.log.format",
	     "\"text\" or \"json\", got \"xml\""},
	    {Q("\"log\":{\"level\":\"trace\"}"), AGS_ERR_CONFIG, "quic.log.level", "got \"trace\""},
	    {Q("\"hub\":true"), AGS_ERR_CONFIG, "quic.hub", "must be an object, got true"},
	    {Q("\"hub\":{\"enabled\":\"yes\"}"), AGS_ERR_CONFIG, "quic.hub.enabled",
	     "must be true or false, got \"yes\""},
	    {Q("\"hub\":{\"algorithms\":\"HS256\"}"), AGS_ERR_CONFIG, "quic.hub.algorithms",
	     "must be a non-empty array"},
	    {Q("\"hub\":{\"algorithms\":[]}"), AGS_ERR_CONFIG, "quic.hub.algorithms",
	     "non-empty array of \"HS256\", \"RS256\" and \"ES256\", got an array"},
	    {Q("\"hub\":{\"algorithms\":[\"HS256\",\"none\"]}"), AGS_ERR_CONFIG,
	     "quic.hub.algorithms[1]", "must be \"HS256\", \"RS256\" or \"ES256\", got \"none\""},
	    {Q("\"hub\":{\"algorithms\":[\"hs256\"]}"), AGS_ERR_CONFIG, "quic.hub.algorithms[0]",
	     "got \"hs256\""},
	    {Q("\"hub\":{\"algorithms\":[\"ES256\",\"ES256\"]}"), AGS_ERR_CONFIG,
	     "quic.hub.algorithms[1]", "is listed twice"},
	    {Q("\"hub\":{\"algorithms\":[\"HS256\",\"RS256\",\"ES256\",\"HS256\"]}"),
	     AGS_ERR_CONFIG, "quic.hub.algorithms", "at most once, got 4"},
	    {Q("\"hub\":{\"hs256SecretFile\":\"\"}"), AGS_ERR_CONFIG, "quic.hub.hs256SecretFile",
	     "must not be empty"},
	    {Q("\"hub\":{\"rs256PublicKeyFile\":7}"), AGS_ERR_CONFIG, "quic.hub.rs256PublicKeyFile",
	     "must be a string, got 7"},
	    {Q("\"hub\":{\"es256PublicKeyFile\":null}"), AGS_ERR_CONFIG,
	     "quic.hub.es256PublicKeyFile", "got null"},
	    {Q("\"hub\":{\"issuer\":[\"a\"]}"), AGS_ERR_CONFIG, "quic.hub.issuer",
	     "must be a string, got an array"},
	    {Q("\"hub\":{\"audience\":\"\"}"), AGS_ERR_CONFIG, "quic.hub.audience",
	     "must not be empty"},
	    {Q("\"hub\":{\"skewSeconds\":-5}"), AGS_ERR_CONFIG, "quic.hub.skewSeconds",
	     "must be an integer from 0 to 86400, got -5"},
	    {Q("\"hub\":{\"skewSeconds\":1.5}"), AGS_ERR_CONFIG, "quic.hub.skewSeconds", "got 1.5"},
	    {Q("\"hub\":{\"maxAgents\":0}"), AGS_ERR_CONFIG, "quic.hub.maxAgents",
	     "from 1 to 1000000, got 0"},
	    {Q("\"hub\":{\"maxTenants\":\"10\"}"), AGS_ERR_CONFIG, "quic.hub.maxTenants",
	     "got \"10\""},
	    {Q("\"hub\":{\"enabled\":true,\"enabled\":true}"), AGS_ERR_CONFIG, "quic.hub.enabled",
	     "duplicate key"},
	    {Q("\"hub\":{\"enabled\":true}"), AGS_ERR_CONFIG, "quic.hub",
	     "needs a key to verify the agents' tokens"},
	    {Q("\"hub\":{\"enabled\":true,\"algorithms\":[\"HS256\",\"RS256\"],"
	       "\"hs256SecretFile\":\"s\"}"),
	     AGS_ERR_CONFIG, "quic.hub.rs256PublicKeyFile",
	     "required in hub mode: quic.hub.algorithms allows RS256"},
	    {Q("\"hub\":{\"enabled\":true,\"algorithms\":[\"ES256\"],"
	       "\"hs256SecretFile\":\"s\"}"),
	     AGS_ERR_CONFIG, "quic.hub.es256PublicKeyFile", "allows ES256"},
	    {Q("\"hub\":{\"upstream\":5}"), AGS_ERR_CONFIG, "quic.hub.upstream",
	     "must be an object, got 5"},
	    {Q("\"hub\":{\"upstream\":{\"endpoint\":\"http://h:1\",\"token\":\"t\"}}"),
	     AGS_ERR_CONFIG, "quic.hub.upstream.endpoint",
	     "must be \"quic://HOST:PORT\" (\"quic://[::1]:PORT\" for IPv6; the port defaults to "
	     "4433), got \"http://h:1\""},
	    {Q("\"hub\":{\"upstream\":{\"endpoint\":\"quic://h:0\",\"token\":\"t\"}}"),
	     AGS_ERR_CONFIG, "quic.hub.upstream.endpoint", "got \"quic://h:0\""},
	    {Q("\"hub\":{\"upstream\":{\"endpoint\":\"quic://:4433\",\"token\":\"t\"}}"),
	     AGS_ERR_CONFIG, "quic.hub.upstream.endpoint", "quic://HOST:PORT"},
	    {Q("\"hub\":{\"upstream\":{\"endpoint\":\"quic://::1:4433\",\"token\":\"t\"}}"),
	     AGS_ERR_CONFIG, "quic.hub.upstream.endpoint", "[::1]"},
	    {Q("\"hub\":{\"upstream\":{\"endpoint\":\"quic://h:1/x\",\"token\":\"t\"}}"),
	     AGS_ERR_CONFIG, "quic.hub.upstream.endpoint", "quic://HOST:PORT"},
	    {Q("\"hub\":{\"upstream\":{\"endpoint\":\"quic://h:1\"}}"), AGS_ERR_CONFIG,
	     "quic.hub.upstream.token", "required with upstream.endpoint"},
	    {Q("\"hub\":{\"upstream\":{\"endpoint\":\"quic://h:1\",\"token\":\"t\","
	       "\"tokenFile\":\"f\"}}"),
	     AGS_ERR_CONFIG, "quic.hub.upstream.tokenFile", "not both"},
	    {Q("\"hub\":{\"upstream\":{\"token\":\"t\"}}"), AGS_ERR_CONFIG,
	     "quic.hub.upstream.endpoint", "required when upstream.token is set"},
	    {Q("\"hub\":{\"upstream\":{\"hubId\":\"h\"}}"), AGS_ERR_CONFIG,
	     "quic.hub.upstream.endpoint", "required when upstream.hubId is set"},
	    {Q("\"hub\":{\"upstream\":{\"endpoint\":\"quic://h\",\"token\":\"t\","
	       "\"hubId\":\"a b\"}}"),
	     AGS_ERR_CONFIG, "quic.hub.upstream.hubId", "must be an id"},
	    {Q("\"hub\":{\"upstream\":{\"endpoint\":\"quic://h\",\"token\":\"\"}}"), AGS_ERR_CONFIG,
	     "quic.hub.upstream.token", "must not be empty"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		parse_bad(cases[i].json, cases[i].code, cases[i].field, cases[i].msg);
}

static void hub_keys_map_to_the_node_config(void **state)
{
	(void)state;
	const char *json =
	    Q("\"tenant\":\"acme\",\"hub\":{\"enabled\":true,\"algorithms\":[\"ES256\",\"HS256\"],"
	      "\"hs256SecretFile\":\"keys/secret\",\"rs256PublicKeyFile\":\"keys/rs.pem\","
	      "\"es256PublicKeyFile\":\"keys/es.pem\",\"issuer\":\"https://issuer\","
	      "\"audience\":\"hub\",\"skewSeconds\":120,\"maxAgents\":500,\"maxTenants\":7,"
	      "\"foo\":1,\"upstream\":{\"endpoint\":\"quic://[::1]:5000\",\"token\":\"a.b.c\","
	      "\"hubId\":\"hub-0\",\"bar\":true}}");
	ags_config *c = parse_ok(json, NULL);
	const ags_node_config *n = &c->node;
	assert_int_equal(n->hub.enabled, 1);
	assert_int_equal(n->hub.n_algorithms, 2);
	assert_string_equal(n->hub.algorithms[0], "ES256");
	assert_string_equal(n->hub.algorithms[1], "HS256");
	assert_string_equal(n->hub.hs256_secret_file, "keys/secret");
	assert_null(n->hub.hs256_secret);
	assert_string_equal(n->hub.rs256_public_key_file, "keys/rs.pem");
	assert_string_equal(n->hub.es256_public_key_file, "keys/es.pem");
	assert_string_equal(n->hub.issuer, "https://issuer");
	assert_string_equal(n->hub.audience, "hub");
	assert_int_equal(n->hub.skew_s, 120);
	assert_int_equal(n->hub.max_agents, 500);
	assert_int_equal(n->hub.max_tenants, 7);
	assert_string_equal(n->hub.upstream.endpoint, "quic://[::1]:5000");
	assert_string_equal(n->hub.upstream.token, "a.b.c");
	assert_string_equal(n->hub.upstream.hub_id, "hub-0");
	assert_null(c->hub_token_file);
	/* Unknown keys inside hub warn with their path. */
	assert_int_equal(c->n_warnings, 2);
	assert_string_equal(c->warnings[0], "quic.hub.foo: unknown key, ignored");
	assert_string_equal(c->warnings[1], "quic.hub.upstream.bar: unknown key, ignored");
	ags_config_del(c);

	/* Defaults: hub mode off, the node's defaults untouched. */
	c = parse_ok(Q("\"port\":1"), NULL);
	assert_int_equal(c->node.hub.enabled, 0);
	assert_int_equal(c->node.hub.n_algorithms, 0);
	assert_int_equal(c->node.hub.skew_s, 0);
	assert_int_equal(c->node.hub.max_agents, 0);
	assert_null(c->node.hub.upstream.endpoint);
	ags_config_del(c);

	/* skewSeconds 0 means no skew at all (-1 for the node, whose 0 is "30 s"). */
	c = parse_ok(Q("\"hub\":{\"skewSeconds\":0}"), NULL);
	assert_int_equal(c->node.hub.skew_s, -1);
	ags_config_del(c);

	/* An upstream with a token file; no port means 4433. */
	c = parse_ok(Q("\"hub\":{\"upstream\":{\"endpoint\":\"quic://hub.example\","
	               "\"tokenFile\":\"tok\"}}"),
	             NULL);
	assert_string_equal(c->hub_token_file, "tok");
	assert_null(c->node.hub.upstream.token);
	ags_config_del(c);

	/* One key and no algorithm list: the algorithms are the keys'. */
	c = parse_ok(Q("\"hub\":{\"enabled\":true,\"es256PublicKeyFile\":\"e.pem\"}"), NULL);
	assert_int_equal(c->node.hub.n_algorithms, 0);
	ags_config_del(c);

	assert_true(ags_config_endpoint_valid("quic://127.0.0.1:4433"));
	assert_true(ags_config_endpoint_valid("quic://[::1]"));
	assert_true(ags_config_endpoint_valid("quic://h.example:65535"));
	assert_false(ags_config_endpoint_valid("quic://h:65536"));
	assert_false(ags_config_endpoint_valid("quic://h:"));
	assert_false(ags_config_endpoint_valid("quic://[]:1"));
	assert_false(ags_config_endpoint_valid("quic://[::1]x"));
	assert_false(ags_config_endpoint_valid("h:1"));
	assert_false(ags_config_endpoint_valid("quic://a b:1"));
}

static void hub_override_needs_a_key(void **state)
{
	(void)state;
	ags_config_overrides ov;
	ags_config_overrides_init(&ov);
	assert_int_equal(ov.hub, -1);
	ov.hub = 1;
	ags_config *c = NULL;
	ags_error err;
	const char *nokey = Q("\"port\":1");
	assert_int_equal(ags_config_parse(nokey, strlen(nokey), &ov, &c, &err), AGS_ERR_CONFIG);
	assert_null(c);
	assert_string_equal(err.field, "quic.hub");
	assert_non_null(strstr(err.message, "--hub"));
	const char *key = Q("\"hub\":{\"hs256SecretFile\":\"s\"}");
	c = parse_ok(key, &ov);
	assert_int_equal(c->node.hub.enabled, 1);
	ags_config_del(c);
	/* Without --hub the same file is a plain node. */
	c = parse_ok(key, NULL);
	assert_int_equal(c->node.hub.enabled, 0);
	ags_config_del(c);
	/* No config at all with --hub: there is no key to verify tokens with. */
	assert_int_equal(ags_config_new_default("h", &ov, &c, &err), AGS_ERR_CONFIG);
	assert_null(c);
	assert_string_equal(err.field, "quic.hub");
}

/* An EC P-256 public key in PEM, made with GnuTLS. */
static char *ec_public_pem(void)
{
	gnutls_privkey_t priv;
	gnutls_pubkey_t pub;
	gnutls_datum_t out;
	assert_int_equal(gnutls_privkey_init(&priv), 0);
	assert_int_equal(gnutls_privkey_generate(priv, GNUTLS_PK_ECDSA,
	                                         GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1),
	                                         0),
	                 0);
	assert_int_equal(gnutls_pubkey_init(&pub), 0);
	assert_int_equal(gnutls_pubkey_import_privkey(pub, priv, 0, 0), 0);
	assert_int_equal(gnutls_pubkey_export2(pub, GNUTLS_X509_FMT_PEM, &out), 0);
	char *pem = strndup((const char *)out.data, out.size);
	gnutls_free(out.data);
	gnutls_pubkey_deinit(pub);
	gnutls_privkey_deinit(priv);
	return pem;
}

/* Parses `json` (with DIR replaced by dir), then expects check_files to give code at field. */
static void hub_files_case(const char *dir, const char *json, int code, const char *field,
                           const char *msg)
{
	char *text = tu_replace(json, "DIR", dir);
	ags_config *c = parse_ok(text, NULL);
	ags_error err;
	ags_error_clear(&err);
	int rc = ags_config_check_files(c, &err);
	if (rc != code || (code && (strcmp(err.field, field) != 0 || !strstr(err.message, msg))))
		fail_msg("for %s\n  expected %s at \"%s\" with \"%s\"\n  got %s at \"%s\": %s",
		         text, ags_strerror(code), field, msg, ags_strerror(rc), err.field,
		         err.message);
	ags_config_del(c);
	free(text);
}

static void hub_key_files_are_checked(void **state)
{
	(void)state;
	char *dir = tu_mkdtemp("config-hub");
	char *p = tu_sprintf("%s/good-secret", dir);
	tu_write_file(p, "0123456789abcdef0123456789abcdef\n");
	free(p);
	p = tu_sprintf("%s/short-secret", dir);
	/* 31 bytes and a newline: the newline is not part of the secret. */
	tu_write_file(p, "0123456789abcdef0123456789abcde\n");
	free(p);
	p = tu_sprintf("%s/es.pem", dir);
	char *pem = ec_public_pem();
	tu_write_file(p, pem);
	free(pem);
	free(p);
	p = tu_sprintf("%s/garbage.pem", dir);
	tu_write_file(p, "not a key\n");
	free(p);

	hub_files_case(dir, Q("\"hub\":{\"enabled\":true,\"hs256SecretFile\":\"DIR/good-secret\"}"),
	               0, NULL, NULL);
	hub_files_case(dir,
	               Q("\"hub\":{\"enabled\":true,\"hs256SecretFile\":\"DIR/short-secret\"}"),
	               AGS_ERR_CONFIG, "quic.hub.hs256SecretFile", "at least 32 bytes");
	hub_files_case(dir, Q("\"hub\":{\"enabled\":true,\"hs256SecretFile\":\"DIR/none\"}"),
	               AGS_ERR_CONFIG, "quic.hub.hs256SecretFile", "No such file");
	hub_files_case(dir, Q("\"hub\":{\"enabled\":true,\"es256PublicKeyFile\":\"DIR/es.pem\"}"),
	               0, NULL, NULL);
	hub_files_case(dir,
	               Q("\"hub\":{\"enabled\":true,\"algorithms\":[\"RS256\"],"
	                 "\"rs256PublicKeyFile\":\"DIR/es.pem\"}"),
	               AGS_ERR_CONFIG, "quic.hub.rs256PublicKeyFile",
	               "RS256 needs an RSA key of at least 2048 bits");
	hub_files_case(dir,
	               Q("\"hub\":{\"enabled\":true,\"es256PublicKeyFile\":\"DIR/garbage.pem\"}"),
	               AGS_ERR_CONFIG, "quic.hub.es256PublicKeyFile", "not a PEM public key");
	/* Keys of algorithms not allowed are still read (the hub reads them), not checked. */
	hub_files_case(dir,
	               Q("\"hub\":{\"enabled\":true,\"algorithms\":[\"HS256\"],"
	                 "\"hs256SecretFile\":\"DIR/good-secret\","
	                 "\"es256PublicKeyFile\":\"DIR/garbage.pem\"}"),
	               0, NULL, NULL);
	/* Outside hub mode the keys are not looked at. */
	hub_files_case(dir, Q("\"hub\":{\"hs256SecretFile\":\"DIR/none\"}"), 0, NULL, NULL);
	hub_files_case(dir,
	               Q("\"hub\":{\"upstream\":{\"endpoint\":\"quic://h\","
	                 "\"tokenFile\":\"DIR/none\"}}"),
	               AGS_ERR_CONFIG, "quic.hub.upstream.tokenFile", "cannot read");
	tu_rmrf(dir);
	free(dir);
}

static void upstream_token_file_is_read(void **state)
{
	(void)state;
	char *dir = tu_mkdtemp("config-tok");
	char *tok = tu_sprintf("%s/token", dir);
	char *json = tu_sprintf(
	    Q("\"hub\":{\"upstream\":{\"endpoint\":\"quic://h\",\"tokenFile\":\"%s\"}}"), tok);
	ags_config *c = parse_ok(json, NULL);
	ags_error err;
	tu_write_file(tok, "aaa.bbb.ccc\r\n\n");
	assert_int_equal(ags_config_load_files(c, &err), 0);
	assert_string_equal(c->node.hub.upstream.token, "aaa.bbb.ccc");
	ags_config_del(c);

	c = parse_ok(json, NULL);
	tu_write_file(tok, " \n");
	assert_int_equal(ags_config_load_files(c, &err), AGS_ERR_CONFIG);
	assert_string_equal(err.field, "quic.hub.upstream.tokenFile");
	assert_non_null(strstr(err.message, "holds no token"));
	tu_write_file(tok, "aaa bbb\n");
	assert_int_equal(ags_config_load_files(c, &err), AGS_ERR_CONFIG);
	assert_non_null(strstr(err.message, "at byte 3"));
	assert_null(c->node.hub.upstream.token);
	ags_config_del(c);

	/* No file named: nothing to do. */
	c = parse_ok(Q("\"port\":1"), NULL);
	assert_int_equal(ags_config_load_files(c, &err), 0);
	assert_null(c->node.hub.upstream.token);
	ags_config_del(c);
	tu_rmrf(dir);
	free(json);
	free(tok);
	free(dir);
}

static void malformed_json_has_its_offset(void **state)
{
	(void)state;
	const char *json = "{\n  \"quic\": {\n    \"port\": 44 33\n  }\n}";
	ags_config *c = NULL;
	ags_error err;
	assert_int_equal(ags_config_parse(json, strlen(json), NULL, &c, &err), AGS_ERR_JSON);
	assert_null(c);
	assert_int_equal(err.offset, (size_t)(strstr(json, "33") - json));
	assert_non_null(strstr(err.message, "line 3"));
	char *at = tu_sprintf("at byte %zu ", err.offset);
	assert_non_null(strstr(err.message, at));
	free(at);

	const char *trailing = "{\"quic\":{\"nodeId\":\"a\",}}";
	assert_int_equal(ags_config_parse(trailing, strlen(trailing), NULL, &c, &err),
	                 AGS_ERR_JSON);
	assert_int_equal(err.offset, 21);

	assert_int_equal(ags_config_parse("", 0, NULL, &c, &err), AGS_ERR_JSON);
	assert_int_equal(ags_config_parse("{\"quic\":{}} x", 13, NULL, &c, &err), AGS_ERR_JSON);
	assert_int_equal(err.offset, 12);
}

static void too_large_is_refused(void **state)
{
	(void)state;
	size_t n = AGS_CONFIG_MAX_BYTES + 1;
	char *big = malloc(n);
	memset(big, ' ', n);
	ags_config *c = NULL;
	ags_error err;
	assert_int_equal(ags_config_parse(big, n, NULL, &c, &err), AGS_ERR_TOO_LARGE);
	assert_null(c);
	free(big);
}

static void overrides_replace_and_are_checked(void **state)
{
	(void)state;
	const char *json = Q("\"port\":1000,\"host\":\"0.0.0.0\",\"dataDir\":\"x\"");
	ags_config_overrides ov;
	ags_config_overrides_init(&ov);
	ov.node_id = "other";
	ov.host = "127.0.0.1";
	ov.port = 0;
	ov.data_dir = "/tmp/d";
	ov.log_format = AGS_LOG_FORMAT_JSON;
	ov.api_listen = "127.0.0.1:9999";
	ags_config *c = parse_ok(json, &ov);
	assert_string_equal(c->api.listen, "127.0.0.1:9999");
	assert_string_equal(c->api.host, "127.0.0.1");
	assert_int_equal(c->api.port, 9999);
	assert_string_equal(c->node.node_id, "other");
	assert_string_equal(c->node.host, "127.0.0.1");
	assert_int_equal(c->node.port, 0);
	assert_string_equal(c->node.data_dir, "/tmp/d");
	assert_int_equal(c->log.format, AGS_LOG_FORMAT_JSON);
	ags_config_del(c);

	ags_error err;
	ags_config_overrides_init(&ov);
	ov.port = 70000;
	assert_int_equal(ags_config_parse(json, strlen(json), &ov, &c, &err), AGS_ERR_CONFIG);
	assert_string_equal(err.field, "--port");
	ags_config_overrides_init(&ov);
	ov.node_id = "no spaces";
	assert_int_equal(ags_config_parse(json, strlen(json), &ov, &c, &err), AGS_ERR_CONFIG);
	assert_string_equal(err.field, "--node-id");
	ags_config_overrides_init(&ov);
	ov.api_listen = "7433";
	assert_int_equal(ags_config_parse(json, strlen(json), &ov, &c, &err), AGS_ERR_CONFIG);
	assert_string_equal(err.field, "--api");
	ags_config_overrides_init(&ov);
	ov.host = "localhost";
	assert_int_equal(ags_config_parse(json, strlen(json), &ov, &c, &err), AGS_ERR_CONFIG);
	assert_string_equal(err.field, "--host");
	/* An override that makes a peer the node itself is caught too. */
	const char *peers = Q("\"peers\":[{\"id\":\"b\",\"address\":\"x\",\"port\":1}]");
	ags_config_overrides_init(&ov);
	ov.node_id = "b";
	assert_int_equal(ags_config_parse(peers, strlen(peers), &ov, &c, &err), AGS_ERR_CONFIG);
	assert_string_equal(err.field, "quic.peers[0].id");
}

static void load_reads_files(void **state)
{
	(void)state;
	char *dir = tu_mkdtemp("config");
	char *path = tu_sprintf("%s/quic.json", dir);
	ags_config *c = NULL;
	ags_error err;
	assert_int_equal(ags_config_load(path, NULL, &c, &err), AGS_ERR_NOT_FOUND);
	assert_non_null(strstr(err.message, "No such file"));
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(Q("\"port\":5555"), f);
	fclose(f);
	assert_int_equal(ags_config_load(path, NULL, &c, &err), 0);
	assert_int_equal(c->node.port, 5555);
	ags_config_del(c);
	assert_int_equal(ags_config_load(dir, NULL, &c, &err), AGS_ERR_IO);
	tu_rmrf(dir);
	free(path);
	free(dir);
}

static void check_files_names_the_key(void **state)
{
	(void)state;
	char *dir = tu_mkdtemp("config");
	char *cert = tu_sprintf("%s/cert.pem", dir);
	char *file = tu_sprintf("%s/file", dir);
	FILE *f = fopen(cert, "w");
	fclose(f);
	f = fopen(file, "w");
	fclose(f);
	char *json = tu_sprintf(
	    Q("\"tls\":{\"cert\":\"%s\",\"key\":\"%s\",\"ca\":\"%s/none.pem\"}"), cert, cert, dir);
	ags_config *c = parse_ok(json, NULL);
	ags_error err;
	assert_int_equal(ags_config_check_files(c, &err), AGS_ERR_CONFIG);
	assert_string_equal(err.field, "quic.tls.ca");
	assert_non_null(strstr(err.message, "none.pem"));
	ags_config_set_str(c, &c->node.tls.ca, cert);
	assert_int_equal(ags_config_check_files(c, &err), 0);
	ags_config_set_str(c, &c->node.data_dir, file);
	assert_int_equal(ags_config_check_files(c, &err), AGS_ERR_CONFIG);
	assert_string_equal(err.field, "quic.dataDir");
	ags_config_set_str(c, &c->node.data_dir, dir);
	assert_int_equal(ags_config_check_files(c, &err), 0);
	ags_config_del(c);
	tu_rmrf(dir);
	free(json);
	free(file);
	free(cert);
	free(dir);
}

static void default_config_takes_the_host_name(void **state)
{
	(void)state;
	ags_config *c = NULL;
	ags_error err;
	assert_int_equal(ags_config_new_default("My_Host.Example.COM", NULL, &c, &err), 0);
	assert_string_equal(c->node.node_id, "my_host.example.com");
	assert_string_equal(c->node.data_dir, AGS_CONFIG_DATA_DIR_DEFAULT);
	assert_int_equal(c->tls_from_file, 0);
	assert_int_equal(c->node.tls.reject_unauthorized, 1);
	assert_int_equal(c->n_warnings, 0);
	ags_config_del(c);
	ags_config_overrides ov;
	ags_config_overrides_init(&ov);
	ov.data_dir = "elsewhere";
	assert_int_equal(ags_config_new_default(NULL, &ov, &c, &err), 0);
	assert_true(ags_config_id_valid(c->node.node_id));
	assert_string_equal(c->node.data_dir, "elsewhere");
	ags_config_del(c);
}

static void small_helpers(void **state)
{
	(void)state;
	char out[AGS_NODE_ID_MAX + 1];
	ags_config_sanitize_id("--a b@c", out, sizeof(out));
	assert_string_equal(out, "a-b-c");
	ags_config_sanitize_id("", out, sizeof(out));
	assert_string_equal(out, "node");
	char longname[200];
	memset(longname, 'x', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	assert_int_equal(ags_config_sanitize_id(longname, out, sizeof(out)), AGS_NODE_ID_MAX);
	assert_true(ags_config_id_valid(out));

	assert_true(ags_config_id_valid("agent-1"));
	assert_false(ags_config_id_valid(".a"));
	assert_false(ags_config_id_valid("a:b"));
	assert_false(ags_config_id_valid(""));

	char host[64];
	uint16_t port = 0;
	assert_int_equal(ags_config_split_hostport("127.0.0.1:7433", host, sizeof(host), &port), 0);
	assert_string_equal(host, "127.0.0.1");
	assert_int_equal(port, 7433);
	assert_int_equal(ags_config_split_hostport("[::1]:1", host, sizeof(host), &port), 0);
	assert_string_equal(host, "::1");
	assert_int_equal(port, 1);
	assert_true(ags_config_split_hostport(":80", host, sizeof(host), &port) < 0);
	assert_true(ags_config_split_hostport("h:", host, sizeof(host), &port) < 0);
	assert_true(ags_config_split_hostport("h:8a", host, sizeof(host), &port) < 0);
	assert_true(ags_config_split_hostport("[::1]80", host, sizeof(host), &port) < 0);

	assert_int_equal(ags_config_log_level("warn"), AGS_LOG_WARN);
	assert_int_equal(ags_config_log_level("WARN"), -1);
	assert_string_equal(ags_config_log_level_name(AGS_LOG_DEBUG), "DEBUG");
}

/* Encryption at rest: quic.storage.encryption.keyFile, quic.hub.tenants.<t>.keyFile, and
 * $AGENTSYNC_STORE_KEY_FILE (an override), each checked and named by its path. */
static void store_key_settings(void **state)
{
	(void)state;
	ags_config *c = parse_ok(Q("\"storage\":{\"encryption\":{\"keyFile\":\"/k/store\"}},"
	                           "\"hub\":{\"tenants\":{\"acme\":{\"keyFile\":\"/k/acme\"},"
	                           "\"beta.1\":{\"keyFile\":\"/k/beta\"}}}"),
	                         NULL);
	assert_string_equal(c->node.store_key_file, "/k/store");
	assert_int_equal(c->node.hub.n_tenant_keys, 2);
	assert_string_equal(c->node.hub.key_tenants[0], "acme");
	assert_string_equal(c->node.hub.key_files[0], "/k/acme");
	assert_string_equal(c->node.hub.key_tenants[1], "beta.1");
	assert_string_equal(c->node.hub.key_files[1], "/k/beta");
	ags_config_del(c);
	c = parse_ok(Q("\"port\":1"), NULL);
	assert_null(c->node.store_key_file);
	assert_int_equal(c->node.hub.n_tenant_keys, 0);
	ags_config_del(c);

	parse_bad(Q("\"storage\":{\"encryption\":{\"keyFile\":\"\"}}"), AGS_ERR_CONFIG,
	          "quic.storage.encryption.keyFile", "must not be empty");
	parse_bad(Q("\"storage\":{\"encryption\":{\"keyFile\":7}}"), AGS_ERR_CONFIG,
	          "quic.storage.encryption.keyFile", "must be a string");
	parse_bad(Q("\"storage\":{\"encryption\":true}"), AGS_ERR_CONFIG, "quic.storage.encryption",
	          "must be an object");
	parse_bad(Q("\"hub\":{\"tenants\":[]}"), AGS_ERR_CONFIG, "quic.hub.tenants",
	          "must be an object");
	parse_bad(Q("\"hub\":{\"tenants\":{\"a/b\":{\"keyFile\":\"k\"}}}"), AGS_ERR_CONFIG,
	          "quic.hub.tenants.a/b", "not a tenant name");
	parse_bad(Q("\"hub\":{\"tenants\":{\"a\":{}}}"), AGS_ERR_CONFIG,
	          "quic.hub.tenants.a.keyFile", "required");
	parse_bad(Q("\"hub\":{\"tenants\":{\"a\":{\"keyFile\":1}}}"), AGS_ERR_CONFIG,
	          "quic.hub.tenants.a.keyFile", "must be a string");
	parse_bad(Q("\"hub\":{\"tenants\":{\"a\":{\"keyFile\":\"x\"},\"a\":{\"keyFile\":\"y\"}}}"),
	          AGS_ERR_CONFIG, "quic.hub.tenants.a", "duplicate key");

	/* The environment's key file replaces the file's. */
	ags_config_overrides ov;
	ags_config_overrides_init(&ov);
	ov.store_key_file = "/run/credentials/store-key";
	c = parse_ok(Q("\"storage\":{\"encryption\":{\"keyFile\":\"/k/store\"}}"), &ov);
	assert_string_equal(c->node.store_key_file, "/run/credentials/store-key");
	ags_config_del(c);
	ov.store_key_file = "";
	ags_config *bad = NULL;
	ags_error err;
	assert_int_equal(
	    ags_config_parse(Q("\"port\":1"), strlen(Q("\"port\":1")), &ov, &bad, &err),
	    AGS_ERR_CONFIG);
	assert_string_equal(err.field, "AGENTSYNC_STORE_KEY_FILE");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(seed_config_is_accepted_verbatim),
	    cmocka_unit_test(seed_config_without_node_id_names_the_key),
	    cmocka_unit_test(every_key_is_read),
	    cmocka_unit_test(unknown_keys_are_warnings),
	    cmocka_unit_test(mistyped_keys_get_a_suggestion),
	    cmocka_unit_test(open_api_without_token_is_a_warning),
	    cmocka_unit_test(every_error_names_its_path),
	    cmocka_unit_test(hub_keys_map_to_the_node_config),
	    cmocka_unit_test(hub_override_needs_a_key),
	    cmocka_unit_test(hub_key_files_are_checked),
	    cmocka_unit_test(upstream_token_file_is_read),
	    cmocka_unit_test(malformed_json_has_its_offset),
	    cmocka_unit_test(too_large_is_refused),
	    cmocka_unit_test(overrides_replace_and_are_checked),
	    cmocka_unit_test(store_key_settings),
	    cmocka_unit_test(load_reads_files),
	    cmocka_unit_test(check_files_names_the_key),
	    cmocka_unit_test(default_config_takes_the_host_name),
	    cmocka_unit_test(small_helpers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
