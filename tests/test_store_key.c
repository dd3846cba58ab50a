/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Encryption at rest (lib/store/store_key.c, ags_store_opts.key_file): an
 * encrypted store shows no pattern text in any of its files and the sqlite3
 * program cannot read it; the key opens it again; a wrong key, no key, or a
 * key for a plain store is a clear error that writes nothing; a store
 * without a key stays an ordinary SQLite 3 file that sqlite3 reads and
 * writes; encrypt and rekey leave the old store or the new one whole.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"
#include "agentsync/agentsync.h"
#include "store.h"

#define MARK "zebra-marmalade-secret"
#define KEY1 "5f1e8c3b9a0d4e7f2a6b1c8d3e9f0a4b5c7d1e2f3a8b9c0d4e5f6a7b8c9d0e1f"
#define KEY2 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

typedef struct fx {
	char *dir, *path, *key1, *key2;
} fx;

static char *write_key(const char *dir, const char *name, const char *text)
{
	char *p = tu_sprintf("%s/%s", dir, name);
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	return p;
}

static int setup(void **state)
{
	fx *f = calloc(1, sizeof(*f));
	f->dir = tu_mkdtemp("storekey");
	char *data = tu_sprintf("%s/data", f->dir);
	assert_int_equal(mkdir(data, 0700), 0);
	f->path = tu_sprintf("%s/store.db", data);
	free(data);
	/* Keys live outside the data directory, as they should. */
	f->key1 = write_key(f->dir, "k1", KEY1 "\n");
	f->key2 = write_key(f->dir, "k2", KEY2);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fx *f = *state;
	tu_rmrf(f->dir);
	free(f->dir);
	free(f->path);
	free(f->key1);
	free(f->key2);
	free(f);
	return 0;
}

static ags_store *open_with(const char *path, const char *key_file)
{
	ags_store_opts o = {.key_file = key_file};
	ags_store *s = NULL;
	ags_error err;
	if (ags_store_open(path, &o, &s, &err))
		fail_msg("open %s: %s", path, err.message);
	return s;
}

/* n patterns "p<i>" whose data holds MARK. */
static void write_n(ags_store *s, int from, int n)
{
	for (int i = from; i < from + n; i++) {
		char *json =
		    tu_sprintf("{\"id\":\"p%d\",\"agentId\":\"a\",\"type\":\"t\",\"data\":"
		               "{\"note\":\"" MARK " %d\"},\"metadata\":{\"source\":\"test\","
		               "\"tags\":[\"x\"]},\"timestamp\":1,\"version\":1}",
		               i, i);
		ags_pattern *p = NULL;
		ags_error err;
		if (ags_pattern_parse(json, strlen(json), NULL, &p, &err))
			fail_msg("parse %s: %s", json, err.message);
		assert_int_equal(ags_store_apply(s, p, NULL, &err), 0);
		ags_pattern_del(p);
		free(json);
	}
}

static uint64_t count_of(ags_store *s)
{
	uint64_t n = 0;
	assert_int_equal(ags_store_count(s, &n), 0);
	return n;
}

/* Runs a shell command; its exit status, its output in *out (may be NULL). */
static int sh(const char *cmd, char **out)
{
	FILE *p = popen(cmd, "r");
	assert_non_null(p);
	char buf[4096];
	size_t n = fread(buf, 1, sizeof(buf) - 1, p);
	buf[n] = '\0';
	int st = pclose(p);
	if (out)
		*out = tu_sprintf("%s", buf);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int have_sqlite3(void)
{
	return sh("command -v sqlite3 >/dev/null 2>&1", NULL) == 0;
}

/* A store without a key is SQLite 3's own format: the sqlite3 program (plain
 * libsqlite3) reads and writes it, and the store opens what it wrote. */
static void plain_store_is_an_sqlite3_file(void **state)
{
	fx *f = *state;
	ags_store *s = open_with(f->path, NULL);
	write_n(s, 0, 10);
	ags_store_close(s);
	size_t len = 0;
	char *head = tu_read_file(f->path, &len);
	assert_true(len > 100);
	assert_memory_equal(head, "SQLite format 3", 16);
	free(head);
	if (!have_sqlite3()) {
		fprintf(stderr, "sqlite3 not installed: the program's half of the check skipped\n");
		return;
	}
	char *out = NULL;
	char *cmd = tu_sprintf("sqlite3 '%s' 'SELECT count(*) FROM patterns; "
	                       "CREATE TABLE probe(x); INSERT INTO probe VALUES(1);' 2>&1",
	                       f->path);
	assert_int_equal(sh(cmd, &out), 0);
	assert_string_equal(out, "10\n");
	free(out);
	free(cmd);
	s = open_with(f->path, NULL);
	assert_int_equal(count_of(s), 10);
	ags_store_close(s);
}

/* Nothing readable in any file of the data directory, WAL and -shm included. */
static void encrypted_store_shows_nothing(void **state)
{
	fx *f = *state;
	char *data = tu_sprintf("%s/data", f->dir);
	ags_store *s = open_with(f->path, f->key1);
	write_n(s, 0, 200);
	char d1[65];
	ags_store_digest(s, d1);
	/* While it is open: the WAL holds the writes. */
	char *scanned = NULL;
	char *hit = tu_tree_holds(data, MARK, &scanned);
	if (hit)
		fail_msg("%s holds pattern text", hit);
	assert_non_null(strstr(scanned, "store.db-wal"));
	assert_non_null(strstr(scanned, "store.db-shm"));
	free(scanned);
	hit = tu_tree_holds(data, "SQLite format 3", NULL);
	if (hit)
		fail_msg("%s has a plain SQLite header", hit);
	ags_store_close(s);
	/* After the close (checkpointed into the database file). */
	hit = tu_tree_holds(data, MARK, &scanned);
	if (hit)
		fail_msg("%s holds pattern text", hit);
	assert_non_null(strstr(scanned, "store.db"));
	free(scanned);
	if (have_sqlite3()) {
		char *out = NULL;
		char *cmd =
		    tu_sprintf("sqlite3 '%s' 'SELECT count(*) FROM patterns' 2>&1", f->path);
		assert_int_not_equal(sh(cmd, &out), 0);
		assert_non_null(strstr(out, "not a database"));
		free(out);
		free(cmd);
	}
	/* The key opens everything again. */
	s = open_with(f->path, f->key1);
	assert_int_equal(count_of(s), 200);
	char d2[65], rows[65];
	ags_store_digest(s, d2);
	assert_string_equal(d1, d2);
	assert_int_equal(ags_store_verify(s, rows, NULL), 0);
	assert_string_equal(d1, rows);
	ags_pattern *p = NULL;
	assert_int_equal(ags_store_get(s, "p199", &p), 0);
	ags_pattern_del(p);
	ags_store_close(s);
	free(data);
}

/* The bytes of a file, or NULL when absent. */
static char *bytes_of(const char *path, size_t *len)
{
	*len = 0;
	return tu_read_file(path, len);
}

struct snap {
	char *db, *wal;
	size_t db_len, wal_len;
};

static void snap_take(const char *path, struct snap *sn)
{
	char *wal = tu_sprintf("%s-wal", path);
	sn->db = bytes_of(path, &sn->db_len);
	sn->wal = bytes_of(wal, &sn->wal_len);
	free(wal);
}

static void snap_same(const char *path, const struct snap *a)
{
	struct snap b;
	snap_take(path, &b);
	assert_int_equal(a->db_len, b.db_len);
	assert_int_equal(a->wal_len, b.wal_len);
	assert_true((a->db == NULL) == (b.db == NULL));
	assert_true((a->wal == NULL) == (b.wal == NULL));
	if (a->db)
		assert_memory_equal(a->db, b.db, a->db_len);
	if (a->wal)
		assert_memory_equal(a->wal, b.wal, a->wal_len);
	free(b.db);
	free(b.wal);
}

/* A wrong key, no key, and a key for a plain store: an error naming the files, nothing
 * written (not even the WAL a killed writer left). */
static void wrong_or_missing_key_changes_nothing(void **state)
{
	fx *f = *state;
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		ags_store_opts o = {.key_file = f->key1};
		ags_store *s = NULL;
		if (ags_store_open(f->path, &o, &s, NULL))
			_exit(10);
		write_n(s, 0, 50);
		kill(getpid(), SIGKILL); /* the WAL stays, not checkpointed */
		_exit(11);
	}
	int st = 0;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFSIGNALED(st));
	struct snap before;
	snap_take(f->path, &before);
	assert_non_null(before.wal);
	assert_true(before.wal_len > 0);

	ags_store_opts wrong = {.key_file = f->key2};
	ags_store *s = NULL;
	ags_error err;
	assert_int_equal(ags_store_open(f->path, &wrong, &s, &err), AGS_ERR_AUTH);
	assert_null(s);
	assert_non_null(strstr(err.message, f->path));
	assert_non_null(strstr(err.message, f->key2));
	snap_same(f->path, &before);

	assert_int_equal(ags_store_open(f->path, NULL, &s, &err), AGS_ERR_STORE);
	assert_null(s);
	assert_non_null(strstr(err.message, f->path));
	assert_non_null(strstr(err.message, "encrypted"));
	snap_same(f->path, &before);

	s = open_with(f->path, f->key1);
	assert_int_equal(count_of(s), 50);
	ags_store_close(s);
	free(before.db);
	free(before.wal);

	/* A plain store opened with a key. */
	char *plain = tu_sprintf("%s/plain.db", f->dir);
	s = open_with(plain, NULL);
	write_n(s, 0, 5);
	ags_store_close(s);
	snap_take(plain, &before);
	ags_store_opts k1 = {.key_file = f->key1};
	assert_int_equal(ags_store_open(plain, &k1, &s, &err), AGS_ERR_AUTH);
	assert_non_null(strstr(err.message, plain));
	assert_non_null(strstr(err.message, "not encrypted"));
	snap_same(plain, &before);
	free(before.db);
	free(before.wal);
	free(plain);
}

/* A key file that is not one, or is not there: an error naming it, no store made. */
static void bad_key_files_are_refused(void **state)
{
	fx *f = *state;
	ags_error err;
	ags_store *s = NULL;
	char *missing = tu_sprintf("%s/no-such-key", f->dir);
	ags_store_opts o = {.key_file = missing};
	assert_int_equal(ags_store_open(f->path, &o, &s, &err), AGS_ERR_IO);
	assert_non_null(strstr(err.message, missing));
	char *shortk = write_key(f->dir, "short", "abc123\n");
	o.key_file = shortk;
	assert_int_equal(ags_store_open(f->path, &o, &s, &err), AGS_ERR_INVALID);
	assert_non_null(strstr(err.message, shortk));
	assert_non_null(strstr(err.message, "64 hex digits"));
	char *zz = tu_sprintf("zz%s", KEY1 + 2);
	char *nothex = write_key(f->dir, "nothex", zz);
	free(zz);
	o.key_file = nothex;
	assert_int_equal(ags_store_open(f->path, &o, &s, &err), AGS_ERR_INVALID);
	assert_int_equal(access(f->path, F_OK), -1); /* nothing was created */
	/* 32 raw bytes are a key too. */
	char raw[32];
	for (int i = 0; i < 32; i++)
		raw[i] = (char)(i * 7 + 1);
	char *rawk = tu_sprintf("%s/raw", f->dir);
	FILE *fp = fopen(rawk, "wb");
	assert_non_null(fp);
	assert_int_equal(fwrite(raw, 1, 32, fp), 32);
	fclose(fp);
	s = open_with(f->path, rawk);
	write_n(s, 0, 3);
	ags_store_close(s);
	s = open_with(f->path, rawk);
	assert_int_equal(count_of(s), 3);
	ags_store_close(s);
	free(rawk);
	free(nothex);
	free(shortk);
	free(missing);
}

/* The checkpointer's own connection is keyed too: the WAL is copied into the file. */
static void encrypted_store_is_checkpointed(void **state)
{
	fx *f = *state;
	ags_store *s = open_with(f->path, f->key1);
	ags_ckpt_limits lim = {.soft_frames = 4,
	                       .hard_frames = 16,
	                       .writer_frames = 1 << 30,
	                       .quiet_ms = 10,
	                       .max_wait_ms = 10};
	ags_store_set_ckpt_limits(s, &lim);
	write_n(s, 0, 500);
	for (int i = 0; i < 500 && ags_store_ckpt_runs(s) == 0; i++)
		tu_sleep_ms(10);
	assert_true(ags_store_ckpt_runs(s) > 0);
	struct stat sb;
	assert_int_equal(stat(f->path, &sb), 0);
	assert_true(sb.st_size > 4096);
	ags_store_close(s);
	s = open_with(f->path, f->key1);
	assert_int_equal(count_of(s), 500);
	ags_store_close(s);
}

/* A backup of an encrypted store is encrypted with the same key and checks with it. */
static void backup_keeps_the_key(void **state)
{
	fx *f = *state;
	ags_store *s = open_with(f->path, f->key1);
	write_n(s, 0, 100);
	char id[33];
	snprintf(id, sizeof(id), "%s", ags_store_id(s));
	char *dst = tu_sprintf("%s/backup.db", f->dir);
	ags_store_info info;
	ags_error err;
	/* Without the key the source is refused, naming it. */
	assert_int_equal(ags_store_backup(f->path, dst, &info, &err), AGS_ERR_STORE);
	assert_non_null(strstr(err.message, f->path));
	assert_int_equal(access(dst, F_OK), -1);
	/* Online (the store is open, its WAL unchecked-pointed) with the key. */
	assert_int_equal(ags_store_backup_key(f->path, f->key1, dst, &info, &err), 0);
	assert_string_equal(info.id, id);
	assert_int_equal(info.patterns, 100);
	ags_store_close(s);
	char *hit = tu_tree_holds(f->dir, MARK, NULL);
	if (hit)
		fail_msg("%s holds pattern text", hit);
	memset(&info, 0, sizeof(info));
	assert_int_equal(ags_store_inspect_key(dst, f->key1, &info, &err), 0);
	assert_string_equal(info.id, id);
	assert_int_equal(info.patterns, 100);
	assert_int_equal(ags_store_inspect_key(dst, f->key2, &info, &err), AGS_ERR_AUTH);
	assert_non_null(strstr(err.message, f->key2));
	assert_int_equal(ags_store_inspect(dst, &info, &err), AGS_ERR_STORE);
	s = open_with(dst, f->key1);
	assert_int_equal(count_of(s), 100);
	ags_store_close(s);
	free(dst);
}

/* A child writes n patterns and is killed before it closes: the WAL stays. */
static void write_and_die(const char *path, const char *key_file, int n)
{
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		ags_store_opts o = {.key_file = key_file};
		ags_store *s = NULL;
		ags_error e;
		if (ags_store_open(path, &o, &s, &e)) {
			fprintf(stderr, "write_and_die: %s\n", e.message);
			_exit(10);
		}
		write_n(s, 0, n);
		kill(getpid(), SIGKILL);
		_exit(11);
	}
	int st = 0;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	if (!WIFSIGNALED(st))
		fail_msg("the writer exited with %d", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
}

/* The store opens with key_file (NULL: plain), holds n patterns, and has digest d. */
static int opens_whole(const char *path, const char *key_file, int n, const char *d)
{
	ags_store_opts o = {.key_file = key_file};
	ags_store *s = NULL;
	if (ags_store_open(path, &o, &s, NULL))
		return 0;
	char got[65], rows[65];
	uint64_t live = 0;
	ags_store_digest(s, got);
	int ok = count_of(s) == (uint64_t)n && strcmp(got, d) == 0 &&
	         ags_store_verify(s, rows, &live) == 0 && strcmp(rows, d) == 0 &&
	         live == (uint64_t)n;
	ags_store_close(s);
	return ok;
}

static char *digest_of(const char *path, const char *key_file)
{
	ags_store *s = open_with(path, key_file);
	char d[65];
	ags_store_digest(s, d);
	ags_store_close(s);
	return tu_sprintf("%s", d);
}

/* encrypt, rekey and decrypt; refused while the store is open, or with a wrong old key. */
static void encrypt_rekey_decrypt(void **state)
{
	fx *f = *state;
	char *data = tu_sprintf("%s/data", f->dir);
	write_and_die(f->path, NULL, 300); /* a plain store with a WAL */
	char *d = digest_of(f->path, NULL);
	write_and_die(f->path, NULL, 300);
	ags_error err;
	ags_store_info info;

	/* In use by another connection (a running node): refused, nothing changed. */
	ags_store *s = open_with(f->path, NULL);
	int rr = ags_store_rekey(f->path, NULL, f->key1, &info, &err);
	if (rr != AGS_ERR_STATE)
		fail_msg("in use: %d %s", rr, err.message);
	assert_non_null(strstr(err.message, "in use"));
	ags_store_close(s);
	assert_true(opens_whole(f->path, NULL, 300, d));

	write_and_die(f->path, NULL, 300);
	assert_int_equal(ags_store_rekey(f->path, NULL, f->key1, &info, &err), 0);
	assert_int_equal(info.patterns, 300);
	char *hit = tu_tree_holds(data, MARK, NULL);
	if (hit)
		fail_msg("%s holds pattern text after encrypt", hit);
	assert_false(opens_whole(f->path, NULL, 300, d));
	assert_true(opens_whole(f->path, f->key1, 300, d));

	/* A wrong old key: refused, the store unchanged. */
	struct snap before;
	snap_take(f->path, &before);
	assert_int_equal(ags_store_rekey(f->path, f->key2, f->key1, &info, &err), AGS_ERR_AUTH);
	assert_non_null(strstr(err.message, f->key2));
	snap_same(f->path, &before);
	free(before.db);
	free(before.wal);

	write_and_die(f->path, f->key1, 300); /* an encrypted WAL this time */
	assert_int_equal(ags_store_rekey(f->path, f->key1, f->key2, &info, &err), 0);
	assert_false(opens_whole(f->path, f->key1, 300, d));
	assert_true(opens_whole(f->path, f->key2, 300, d));
	hit = tu_tree_holds(data, MARK, NULL);
	if (hit)
		fail_msg("%s holds pattern text after rekey", hit);

	assert_int_equal(ags_store_rekey(f->path, f->key2, NULL, &info, &err), 0);
	assert_true(opens_whole(f->path, NULL, 300, d));
	hit = tu_tree_holds(data, MARK, NULL);
	assert_non_null(hit); /* plain again */
	free(hit);
	free(d);
	free(data);
}

static void kill_self(void *ud, int s)
{
	if (s == *(int *)ud)
		kill(getpid(), SIGKILL);
}

/* SIGKILL at each step of encrypt and of rekey: the old store or the new one, whole. */
static void rekey_killed_at_every_step(void **state)
{
	fx *f = *state;
	write_and_die(f->path, NULL, 200);
	char *d = digest_of(f->path, NULL);
	const char *keys[] = {NULL, f->key1, f->key2};
	for (int k = 0; k < 2; k++) {
		const char *old = keys[k], *new = keys[k + 1];
		ags_error err;
		if (k == 1 && ags_store_rekey(f->path, NULL, old, NULL, &err))
			fail_msg("encrypt for the rekey round: %s", err.message);
		for (int s = AGS_REKEY_LOCKED; s <= AGS_REKEY_DONE; s++) {
			write_and_die(f->path, old, 200); /* rewrites the same: a WAL to handle */
			fflush(NULL);
			pid_t pid = fork();
			assert_true(pid >= 0);
			if (pid == 0) {
				int at = s;
				ags_error e;
				ags_store_rekey_steps(f->path, old, new, NULL, kill_self, &at, &e);
				fprintf(stderr, "rekey: %s\n", e.message);
				_exit(12);
			}
			int st = 0;
			assert_int_equal(waitpid(pid, &st, 0), pid);
			if (!WIFSIGNALED(st))
				fail_msg("step %d: the child was not killed (exit %d)", s,
				         WEXITSTATUS(st));
			int was_old = opens_whole(f->path, old, 200, d);
			int is_new = opens_whole(f->path, new, 200, d);
			if (!(was_old ^ is_new))
				fail_msg("killed at step %d of %s: old store whole %d, new store "
				         "whole %d",
				         s, old ? "rekey" : "encrypt", was_old, is_new);
			/* Before the rename the name is the old store's, from it the new one's. */
			assert_int_equal(is_new, s >= AGS_REKEY_RENAMED);
			if (is_new) {
				/* Back to the old key for the next step. */
				if (ags_store_rekey(f->path, new, old, NULL, &err))
					fail_msg("step %d: back: %s", s, err.message);
			}
		}
	}
	free(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(plain_store_is_an_sqlite3_file, setup, teardown),
	    cmocka_unit_test_setup_teardown(encrypted_store_shows_nothing, setup, teardown),
	    cmocka_unit_test_setup_teardown(wrong_or_missing_key_changes_nothing, setup, teardown),
	    cmocka_unit_test_setup_teardown(bad_key_files_are_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(encrypted_store_is_checkpointed, setup, teardown),
	    cmocka_unit_test_setup_teardown(backup_keeps_the_key, setup, teardown),
	    cmocka_unit_test_setup_teardown(encrypt_rekey_decrypt, setup, teardown),
	    cmocka_unit_test_setup_teardown(rekey_killed_at_every_step, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
