/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Encryption at rest with real daemons and the real CLI: agentsyncd with
 * quic.storage.encryption.keyFile (or $AGENTSYNC_STORE_KEY_FILE) writes no
 * pattern text to any file of its data directory and the sqlite3 program
 * cannot read the store; a restart with the key finds everything, one with a
 * wrong key or none fails at start naming the files and changes nothing;
 * `agentsync store encrypt` and `rekey` killed at many points leave the old
 * store or the new one whole.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "daemonutil.h"
#include "testutil.h"
#include "agentsync/agentsync.h"
#include "store.h"

#define MARK  "okapi-quince-private"
#define KEY_A "8d1f0c6e2b9a4f3d7e5c1b0a9f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c"
#define KEY_B "13579bdf02468ace13579bdf02468ace13579bdf02468ace13579bdf02468ace"

struct fixture {
	char *dir, *data, *key_a, *key_b;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	f->dir = tu_mkdtemp("itkey");
	f->data = tu_sprintf("%s/n1-data", f->dir);
	f->key_a = tu_sprintf("%s/a.key", f->dir);
	f->key_b = tu_sprintf("%s/b.key", f->dir);
	tu_write_file(f->key_a, KEY_A "\n");
	tu_write_file(f->key_b, KEY_B "\n");
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	tu_kill_tracked();
	unsetenv("AGENTSYNC_STORE_KEY_FILE");
	tu_rmrf(f->dir);
	free(f->dir);
	free(f->data);
	free(f->key_a);
	free(f->key_b);
	free(f);
	return 0;
}

/* DIR/n1.json: node n1, data in DIR/n1-data, the store's key file `key` (NULL: none). */
static char *write_config(const struct fixture *f, const char *key)
{
	char *path = tu_sprintf("%s/n1.json", f->dir);
	char *enc = key ? tu_sprintf(",\"storage\":{\"encryption\":{\"keyFile\":\"%s\"}}", key)
	                : tu_sprintf("%s", "");
	char *text = tu_sprintf("{\"quic\":{\"nodeId\":\"n1\",\"host\":\"127.0.0.1\",\"port\":0,"
	                        "\"dataDir\":\"%s\",\"api\":{\"listen\":\"127.0.0.1:0\"}%s}}\n",
	                        f->data, enc);
	tu_write_file(path, text);
	free(text);
	free(enc);
	return path;
}

static int start(struct tu_daemon *d, const struct fixture *f, const char *key)
{
	static int runs;
	char *config = write_config(f, key);
	char *argv[] = {(char *)"--config", config, NULL};
	char *name = tu_sprintf("n1-run%d", ++runs); /* a log of its own per start */
	int rc = tu_daemon_start(d, f->dir, name, NULL, argv);
	free(name);
	free(config);
	return rc;
}

static void stop_ok(struct tu_daemon *d)
{
	int st = tu_daemon_stop(d, SIGTERM);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

/* Puts n patterns whose data holds MARK through the CLI. */
static void put_n(const struct fixture *f, const struct tu_daemon *d, int n)
{
	char *path = tu_sprintf("%s/patterns.ndjson", f->dir);
	FILE *fp = fopen(path, "w");
	assert_non_null(fp);
	for (int i = 0; i < n; i++)
		fprintf(fp,
		        "{\"id\":\"k%d\",\"agentId\":\"it\",\"type\":\"note\",\"data\":{\"text\":"
		        "\"" MARK " %d\"},\"metadata\":{\"source\":\"it\",\"tags\":[\"t\"]},"
		        "\"timestamp\":1700000000000,\"version\":1}\n",
		        i, i);
	fclose(fp);
	char *out = NULL;
	int rc = tu_cli(d->api, NULL, &out, "put", path, NULL);
	if (rc != 0)
		fail_msg("put: %d %s", rc, out);
	free(out);
	free(path);
}

/* How many patterns the daemon lists. */
static size_t listed(const struct tu_daemon *d)
{
	char *out = NULL;
	assert_int_equal(tu_cli(d->api, NULL, &out, "list", NULL), 0);
	size_t n = tu_count_lines_with(out, "\"id\":\"k");
	free(out);
	return n;
}

static void no_pattern_text_in(const char *dir)
{
	char *scanned = NULL;
	char *hit = tu_tree_holds(dir, MARK, &scanned);
	if (hit)
		fail_msg("%s holds pattern text in the clear (read: %s)", hit, scanned);
	free(scanned);
}

/* The bytes of the store and of its WAL, to show a refused start wrote nothing. */
static char *store_bytes(const struct fixture *f, size_t *len)
{
	char *db = tu_sprintf("%s/store.db", f->data),
	     *wal = tu_sprintf("%s/store.db-wal", f->data);
	size_t a = 0, b = 0;
	char *x = tu_read_file(db, &a), *y = tu_read_file(wal, &b);
	char *all = malloc(a + b + 1);
	assert_non_null(all);
	if (x)
		memcpy(all, x, a);
	if (y)
		memcpy(all + a, y, b);
	*len = a + b;
	free(x);
	free(y);
	free(db);
	free(wal);
	return all;
}

static void daemon_store_is_encrypted_at_rest(void **state)
{
	struct fixture *f = *state;
	struct tu_daemon d;
	assert_int_equal(start(&d, f, f->key_a), 0);
	put_n(f, &d, 300);
	assert_int_equal(listed(&d), 300);
	/* While it runs: store, WAL, -shm, certificates, everything. */
	char *scanned = NULL;
	char *hit = tu_tree_holds(f->data, MARK, &scanned);
	if (hit)
		fail_msg("%s holds pattern text", hit);
	assert_non_null(strstr(scanned, "store.db-wal"));
	free(scanned);
	char *db = tu_sprintf("%s/store.db", f->data);
	char *out = NULL;
	char *argv[] = {(char *)"sqlite3", db, (char *)"SELECT count(*) FROM patterns", NULL};
	int rc = tu_run(argv, NULL, NULL, &out);
	if (rc != 127) { /* sqlite3 installed */
		assert_int_not_equal(rc, 0);
		assert_non_null(strstr(out, "not a database"));
	}
	free(out);
	/* An online backup is encrypted with the same key, and checks with it. */
	char *bk = tu_sprintf("%s/backup.db", f->dir);
	rc = tu_cli(d.api, NULL, &out, "backup", "--out", bk, "--key-file", f->key_a, NULL);
	if (rc != 0)
		fail_msg("backup: %s", out);
	free(out);
	hit = tu_tree_holds(bk, MARK, NULL);
	if (hit)
		fail_msg("%s holds pattern text", hit);
	stop_ok(&d);
	no_pattern_text_in(f->data);

	/* The key finds everything again. */
	assert_int_equal(start(&d, f, f->key_a), 0);
	assert_int_equal(listed(&d), 300);
	/* Killed: the WAL stays for the refused starts below. */
	put_n(f, &d, 320);
	tu_daemon_stop(&d, SIGKILL);

	size_t len0 = 0, len1 = 0;
	char *before = store_bytes(f, &len0);
	/* A wrong key: exit status 1, the files named, nothing written. */
	assert_int_equal(start(&d, f, f->key_b), -1);
	assert_true(WIFEXITED(d.exit_status));
	assert_int_equal(WEXITSTATUS(d.exit_status), 1);
	assert_true(tu_daemon_log_has(&d, db));
	assert_true(tu_daemon_log_has(&d, f->key_b));
	assert_true(tu_daemon_log_has(&d, "wrong key"));
	char *after = store_bytes(f, &len1);
	assert_int_equal(len0, len1);
	assert_memory_equal(before, after, len0);
	free(after);
	/* No key at all. */
	assert_int_equal(start(&d, f, NULL), -1);
	assert_int_equal(WEXITSTATUS(d.exit_status), 1);
	assert_true(tu_daemon_log_has(&d, db));
	assert_true(tu_daemon_log_has(&d, "encrypted"));
	after = store_bytes(f, &len1);
	assert_int_equal(len0, len1);
	assert_memory_equal(before, after, len0);
	free(after);
	free(before);

	/* The key file named by the environment instead of the file. */
	setenv("AGENTSYNC_STORE_KEY_FILE", f->key_a, 1);
	assert_int_equal(start(&d, f, NULL), 0);
	unsetenv("AGENTSYNC_STORE_KEY_FILE");
	assert_int_equal(listed(&d), 320);
	stop_ok(&d);

	/* The backup restores into a new data directory with its key. */
	char *data2 = tu_sprintf("%s/restored", f->dir);
	char *argv2[] = {tu_program("agentsync"),
	                 (char *)"restore",
	                 (char *)"--from",
	                 bk,
	                 (char *)"--data",
	                 data2,
	                 (char *)"--key-file",
	                 f->key_a,
	                 NULL};
	rc = tu_run(argv2, NULL, NULL, &out);
	if (rc != 0)
		fail_msg("restore: %s", out);
	free(out);
	ags_store_opts o = {.key_file = f->key_a};
	ags_store *s = NULL;
	char *p2 = tu_sprintf("%s/store.db", data2);
	assert_int_equal(ags_store_open(p2, &o, &s, NULL), 0);
	uint64_t n = 0;
	assert_int_equal(ags_store_count(s, &n), 0);
	assert_int_equal(n, 300);
	ags_store_close(s);
	free(p2);
	free(argv2[0]);
	free(data2);
	free(bk);
	free(db);
}

/* Kills spread over one run of store encrypt (and rekey), and a fifth more past its end. */
#define KILLS 25

static uint64_t mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Which store is at path: 1 plain, 2 encrypted with key, 0 neither opens whole. */
static int which_store(const char *path, const char *key, uint64_t want)
{
	ags_store_opts o = {.key_file = key};
	const ags_store_opts *tries[] = {NULL, &o};
	for (int i = 0; i < 2; i++) {
		ags_store *s = NULL;
		if (ags_store_open(path, tries[i], &s, NULL))
			continue;
		char d[65], rows[65];
		uint64_t n = 0, live = 0;
		ags_store_digest(s, d);
		int ok = ags_store_count(s, &n) == 0 && n == want &&
		         ags_store_verify(s, rows, &live) == 0 && strcmp(d, rows) == 0 &&
		         live == want;
		ags_store_close(s);
		return ok ? i + 1 : 0;
	}
	return 0;
}

/* agentsync store encrypt and rekey: SIGKILLed after many delays, old or new store whole. */
static void store_encrypt_and_rekey_survive_sigkill(void **state)
{
	struct fixture *f = *state;
	struct tu_daemon d;
	assert_int_equal(start(&d, f, NULL), 0);
	put_n(f, &d, 3000);
	/* A running daemon's store is refused. */
	char *prog = tu_program("agentsync");
	char *out = NULL;
	char *enc[] = {prog,    (char *)"store",      (char *)"encrypt", (char *)"--data",
	               f->data, (char *)"--key-file", f->key_a,          NULL};
	assert_int_equal(tu_run(enc, NULL, NULL, &out), 1);
	assert_non_null(strstr(out, "in use"));
	free(out);
	stop_ok(&d);

	char *path = tu_sprintf("%s/store.db", f->data);
	char *rk[] = {prog,
	              (char *)"store",
	              (char *)"rekey",
	              (char *)"--data",
	              f->data,
	              (char *)"--key-file",
	              f->key_a,
	              (char *)"--new-key-file",
	              f->key_b,
	              NULL};
	/* How long a whole run takes here, to spread the kills over it (and past it). */
	uint64_t t0 = mono_us();
	assert_int_equal(tu_run(enc, NULL, NULL, &out), 0);
	free(out);
	uint64_t span = mono_us() - t0;
	ags_error err;
	if (ags_store_rekey(path, f->key_a, NULL, NULL, &err))
		fail_msg("decrypt: %s", err.message);
	struct {
		char **argv;
		const char *old, *new;
	} runs[] = {{enc, NULL, f->key_a}, {rk, f->key_a, f->key_b}};
	for (int r = 0; r < 2; r++) {
		if (r == 1 && ags_store_rekey(path, NULL, f->key_a, NULL, &err))
			fail_msg("encrypt: %s", err.message);
		int left_old = 0, left_new = 0;
		for (int i = 0; i <= KILLS + KILLS / 5; i++) {
			pid_t pid = tu_spawn(runs[r].argv, NULL);
			tu_track_pid(pid);
			usleep((useconds_t)(span * (uint64_t)i / KILLS));
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			tu_untrack_pid(pid);
			int o = which_store(path, runs[r].old, 3000);
			int n = which_store(path, runs[r].new, 3000);
			int is_old = runs[r].old ? o == 2 : o == 1, is_new = n == 2;
			if (!(is_old ^ is_new))
				fail_msg("%s killed after %llu us: old store whole %d, new store "
				         "whole %d",
				         runs[r].argv[2],
				         (unsigned long long)(span * (uint64_t)i / KILLS), is_old,
				         is_new);
			if (is_new) {
				left_new++;
				if (ags_store_rekey(path, runs[r].new, runs[r].old, NULL, &err))
					fail_msg("back to the old key: %s", err.message);
			} else {
				left_old++;
			}
		}
		fprintf(stderr,
		        "store %s (%llu us) killed %d times: the old store left %d times, the new "
		        "one %d times\n",
		        runs[r].argv[2], (unsigned long long)span, KILLS + KILLS / 5 + 1, left_old,
		        left_new);
	}
	/* Done for real: the daemon starts with the new key and finds everything. */
	assert_int_equal(tu_run(rk, NULL, NULL, &out), 0);
	free(out);
	assert_int_equal(start(&d, f, f->key_a), -1);
	assert_int_equal(start(&d, f, f->key_b), 0);
	assert_int_equal(listed(&d), 3000);
	stop_ok(&d);
	no_pattern_text_in(f->data);
	free(path);
	free(prog);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(daemon_store_is_encrypted_at_rest, setup, teardown),
	    cmocka_unit_test_setup_teardown(store_encrypt_and_rekey_survive_sigkill, setup,
	                                    teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
