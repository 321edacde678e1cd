/*
 * openlineage_sender.c - delivering the outbox (see openlineage_sender.h).
 *
 * DESIGN
 * One thread, one SQLite connection, one libcurl easy handle (kept, so a
 * keep-alive connection is reused).  The loop:
 *
 *   1. read the oldest event neither delivered nor dead-lettered (a short
 *      autocommit SELECT; the statement is reset before any I/O, so no read
 *      transaction is held while waiting on the network);
 *   2. deliver it: POST the exact bytes (gzip-compressed when configured,
 *      deterministically, so a resend is byte-identical too), or append one
 *      line to the file and fsync();
 *   3. record the outcome with one UPDATE: delivered_ns, or attempts and
 *      last_error (retry), or dead_ns and response (dead letter);
 *   4. after a retryable failure wait min(15 s, 250 ms * 2^n), half of it
 *      random (jitter), so many hosts coming back do not beat in step.
 * When the outbox is empty the thread polls it every 200 ms: a query of a
 * partial index, cheaper than coupling the writer thread to this one.
 *
 * One sender per store: several mounts may share a store, so a sender
 * delivers only while it holds an exclusive flock(2) on STORE.ol-sender
 * (released by the kernel when its daemon dies, kill -9 included); the
 * others wait for it, so no two daemons send the same event at once.
 *
 * A sender killed between step 2 and step 3 leaves its event delivered but
 * not recorded.  Over http the next sender posts it again (identical bytes:
 * a receiver can drop it).  A file says what it got: the event in doubt is
 * the oldest undelivered one, and if it was appended it ends the file (one
 * sender at a time appends, in order), so the first event after taking the
 * lock that is already the file's last line is recorded, not appended again.
 *
 * Stopping: openlineage_sender_stop() sets `stop`, which the curl progress
 * callback and the waits observe, so an attempt in flight (a receiver that
 * never answers) is abandoned at once; its event stays undelivered.
 *
 * TLS: https is verified against the system's CA bundle; ca_file adds one
 * certificate (libcurl's CAINFO would replace the bundle, so both are
 * handed over as one in-memory blob).  Redirects are not followed (a
 * Location must not receive the API key).  An api_key is only configured
 * with https or a loopback host (daemon/config.c refuses the rest).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <zlib.h>

#include "clock.h"
#include "config.h"
#include "log.h"
#include "openlineage_sender.h"
#include "store.h"

#define POLL_MS 200
#define BACKOFF_BASE_MS 250
#define BACKOFF_CAP_MS 15000
#define RESPONSE_KEEP 512 /* bytes of a refusing response kept with the dead letter */

enum outcome {
	DELIVERED,
	RETRY,
	DEAD,
	STOPPED,
};

struct openlineage_sender {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake; /* signalled by stop */
	atomic_bool stop;

	struct store *store;
	bool http;
	char *url;
	int timeout_ms;
	bool gzip;
	CURL *curl;
	struct curl_slist *headers;
	char *ca_blob; /* system bundle + ca_file, or NULL */
	size_t ca_blob_length;
	int fd; /* transport = file */
	char *path;
	int lock_fd;    /* STORE.ol-sender */
	bool have_lock; /* this daemon is the store's sender */
	bool check_tail; /* file: the next event may end the file already */

	unsigned failures; /* consecutive retryable failures */
	unsigned int seed;
	char response[RESPONSE_KEEP + 1];
	size_t response_length;
};

/* ---- small helpers ---------------------------------------------------------------- */

/* Wait up to ms, or until stopped; true when stopped. */
static bool
wait_ms(struct openlineage_sender *sender, long ms)
{
	struct timespec until;

	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += ms / 1000;
	until.tv_nsec += (ms % 1000) * 1000000;
	if (until.tv_nsec >= 1000000000) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&sender->lock);
	while (!atomic_load(&sender->stop) &&
	       pthread_cond_timedwait(&sender->wake, &sender->lock, &until) != ETIMEDOUT)
		;
	pthread_mutex_unlock(&sender->lock);
	return atomic_load(&sender->stop);
}

static char *
read_whole(const char *path, size_t *length)
{
	FILE *f = fopen(path, "rbe");
	char *data = NULL;
	size_t size = 0;

	if (f == NULL)
		return NULL;
	FILE *memory = open_memstream(&data, &size);
	if (memory) {
		char buffer[8192];
		size_t n;
		while ((n = fread(buffer, 1, sizeof(buffer), f)) > 0)
			fwrite(buffer, 1, n, memory);
		fputc('\n', memory); /* a bundle may lack its last newline */
		fclose(memory);
	}
	fclose(f);
	*length = size;
	return data;
}

/* ---- http ------------------------------------------------------------------------- */

static size_t
keep_response(char *data, size_t size, size_t count, void *argument)
{
	struct openlineage_sender *sender = argument;
	size_t bytes = size * count, room = RESPONSE_KEEP - sender->response_length;

	if (room) {
		size_t n = bytes < room ? bytes : room;
		memcpy(sender->response + sender->response_length, data, n);
		sender->response_length += n;
		sender->response[sender->response_length] = '\0';
	}
	return bytes;
}

static int
check_stop(void *argument, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
	struct openlineage_sender *sender = argument;

	return atomic_load(&sender->stop) ? 1 : 0;
}

/* gzip of data, deterministic (no name, no time in the header); NULL on failure. */
static unsigned char *
gzip_bytes(const char *data, size_t length, size_t *out_length)
{
	z_stream z = {0};
	unsigned char *out;
	size_t bound;

	if (deflateInit2(&z, Z_BEST_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) !=
	    Z_OK)
		return NULL;
	bound = deflateBound(&z, (uLong)length) + 32;
	out = malloc(bound);
	if (out == NULL) {
		deflateEnd(&z);
		return NULL;
	}
	z.next_in = (Bytef *)data;
	z.avail_in = (uInt)length;
	z.next_out = out;
	z.avail_out = (uInt)bound;
	if (deflate(&z, Z_FINISH) != Z_STREAM_END) {
		deflateEnd(&z);
		free(out);
		return NULL;
	}
	*out_length = z.total_out;
	deflateEnd(&z);
	return out;
}

static enum outcome
post(struct openlineage_sender *sender, const char *event, size_t length, char *error,
     size_t error_size)
{
	unsigned char *compressed = NULL;
	const char *body = event;
	size_t body_length = length;
	long status = 0;
	CURLcode rc;
	CURL *curl = sender->curl;

	if (sender->gzip) {
		compressed = gzip_bytes(event, length, &body_length);
		if (compressed == NULL) {
			snprintf(error, error_size, "cannot compress the event");
			return RETRY;
		}
		body = (const char *)compressed;
	}
	sender->response_length = 0;
	sender->response[0] = '\0';
	curl_easy_reset(curl);
	curl_easy_setopt(curl, CURLOPT_URL, sender->url);
	curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_POST, 1L);
	curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_length);
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, sender->headers);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)sender->timeout_ms);
	curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, (long)sender->timeout_ms);
	curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L);
	if (sender->ca_blob) {
		struct curl_blob blob = {sender->ca_blob, sender->ca_blob_length, CURL_BLOB_NOCOPY};
		curl_easy_setopt(curl, CURLOPT_CAINFO_BLOB, &blob);
	}
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, keep_response);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, sender);
	curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, check_stop);
	curl_easy_setopt(curl, CURLOPT_XFERINFODATA, sender);
	rc = curl_easy_perform(curl);
	free(compressed);
	if (rc == CURLE_ABORTED_BY_CALLBACK && atomic_load(&sender->stop))
		return STOPPED;
	if (rc != CURLE_OK) {
		snprintf(error, error_size, "%s", curl_easy_strerror(rc));
		return RETRY; /* connection refused, reset, timeout, TLS: the endpoint may recover
		               */
	}
	curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
	if (status == 200 || status == 201 || status == 202 || status == 204)
		return DELIVERED;
	snprintf(error, error_size, "HTTP %ld: %s", status, sender->response);
	return status >= 500 && status <= 599 ? RETRY : DEAD;
}

/* ---- file ------------------------------------------------------------------------- */

/* Is event (and its newline) the last line of the file? */
static bool
file_ends_with(int fd, const char *event, size_t length)
{
	struct stat st;
	bool same = false;

	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (size_t)st.st_size < length + 1)
		return false;
	char *tail = malloc(length + 1);
	if (tail == NULL)
		return false;
	same = pread(fd, tail, length + 1, st.st_size - (off_t)(length + 1)) ==
		       (ssize_t)(length + 1) &&
	       tail[length] == '\n' && memcmp(tail, event, length) == 0;
	free(tail);
	return same;
}

static enum outcome
append(struct openlineage_sender *sender, const char *event, size_t length, char *error,
       size_t error_size)
{
	struct iovec line[2] = {{(void *)event, length}, {"\n", 1}};

	if (sender->check_tail) {
		sender->check_tail = false;
		if (file_ends_with(sender->fd, event, length))
			return DELIVERED; /* by a sender that died before it said so */
	}
	ssize_t written = writev(sender->fd, line, 2);

	if (written != (ssize_t)length + 1) {
		snprintf(error, error_size, "cannot append to '%s': %s", sender->path,
		         written < 0 ? strerror(errno) : "short write");
		return RETRY;
	}
	if (fsync(sender->fd) < 0) {
		snprintf(error, error_size, "cannot fsync '%s': %s", sender->path, strerror(errno));
		return RETRY;
	}
	return DELIVERED;
}

/* ---- the loop --------------------------------------------------------------------- */

/* The oldest deliverable event: 1 with *id and *event (malloc'd), 0 none, -1 error. */
static int
next_event(sqlite3 *db, int64_t *id, char **event, size_t *length)
{
	sqlite3_stmt *s = NULL;
	int rc;

	if (sqlite3_prepare_v2(
	        db,
	        "SELECT id, event FROM openlineage_outbox WHERE delivered_ns IS NULL "
	        "AND dead_ns IS NULL ORDER BY id LIMIT 1",
	        -1, &s, NULL) != SQLITE_OK)
		return -1;
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*id = sqlite3_column_int64(s, 0);
		*length = (size_t)sqlite3_column_bytes(s, 1);
		*event = malloc(*length + 1);
		if (*event) {
			memcpy(*event, sqlite3_column_text(s, 1), *length);
			(*event)[*length] = '\0';
		}
		rc = *event ? 1 : -1;
	} else {
		rc = rc == SQLITE_DONE ? 0 : -1;
	}
	sqlite3_finalize(s);
	return rc;
}

static int
record(sqlite3 *db, int64_t id, enum outcome outcome, const char *error)
{
	sqlite3_stmt *s = NULL;
	const char *sql =
	    outcome == DELIVERED
	        ? "UPDATE openlineage_outbox SET attempts = attempts + 1, delivered_ns = ?2 "
	          "WHERE id = ?1"
	    : outcome == DEAD
	        ? "UPDATE openlineage_outbox SET attempts = attempts + 1, dead_ns = ?2, "
	          "response = ?3, last_error = ?3 WHERE id = ?1"
	        : "UPDATE openlineage_outbox SET attempts = attempts + 1, last_error = ?3 "
	          "WHERE id = ?1";
	int rc;

	if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_int64(s, 1, id);
	if (outcome != RETRY)
		sqlite3_bind_int64(s, 2, wall_clock_ns());
	sqlite3_bind_text(s, 3, error, -1, SQLITE_TRANSIENT);
	rc = sqlite3_step(s);
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? 0 : -1;
}

static void *
sender_main(void *argument)
{
	struct openlineage_sender *sender = argument;
	sqlite3 *db = store_db(sender->store);
	sigset_t all;

	/* Signals are the FUSE loop's business (as in Redis's bio threads). */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	while (!atomic_load(&sender->stop)) {
		char error[RESPONSE_KEEP + 128] = "", *event = NULL;
		size_t length = 0;
		int64_t id = 0;
		enum outcome outcome;
		int found;

		if (!sender->have_lock) {
			if (flock(sender->lock_fd, LOCK_EX | LOCK_NB) < 0) {
				if (wait_ms(sender, 1000))
					break;
				continue; /* another daemon sends this store's events */
			}
			sender->have_lock = true;
			sender->check_tail = true;
		}
		found = next_event(db, &id, &event, &length);

		if (found <= 0) {
			if (found < 0)
				log_warning("openlineage: cannot read the outbox: %s",
				            sqlite3_errmsg(db));
			if (wait_ms(sender, found < 0 ? 1000 : POLL_MS))
				break;
			continue;
		}
		outcome = sender->http ? post(sender, event, length, error, sizeof(error))
		                       : append(sender, event, length, error, sizeof(error));
		free(event);
		if (outcome == STOPPED)
			break;
		/* A busy store (the writer's batch) is waited for by the busy timeout. */
		while (record(db, id, outcome, error) < 0) {
			log_warning("openlineage: cannot record event %lld: %s", (long long)id,
			            sqlite3_errmsg(db));
			if (wait_ms(sender, 1000))
				goto out;
		}
		if (outcome == DEAD) {
			log_warning(
			    "openlineage: event %lld refused, moved to the dead-letter list: "
			    "%s",
			    (long long)id, error);
		} else if (outcome == RETRY) {
			if (sender->failures++ == 0)
				log_warning(
				    "openlineage: cannot deliver event %lld (will retry): %s",
				    (long long)id, error);
			unsigned shift = sender->failures - 1 < 16 ? sender->failures - 1 : 16;
			long delay = (long)BACKOFF_BASE_MS << shift;
			if (delay > BACKOFF_CAP_MS)
				delay = BACKOFF_CAP_MS;
			delay =
			    delay / 2 + (long)(rand_r(&sender->seed) % (unsigned)(delay / 2 + 1));
			if (wait_ms(sender, delay))
				break;
			continue;
		}
		if (sender->failures) {
			log_info("openlineage: delivering again after %u failed attempts",
			         sender->failures);
			sender->failures = 0;
		}
	}
out:
	return NULL;
}

/* ---- start and stop ---------------------------------------------------------------- */

static void
sender_free(struct openlineage_sender *sender)
{
	if (sender == NULL)
		return;
	if (sender->curl)
		curl_easy_cleanup(sender->curl);
	curl_slist_free_all(sender->headers);
	if (sender->fd >= 0)
		close(sender->fd);
	if (sender->lock_fd >= 0)
		close(sender->lock_fd); /* releases the flock */
	store_close(sender->store);
	free(sender->ca_blob);
	free(sender->url);
	free(sender->path);
	pthread_cond_destroy(&sender->wake);
	pthread_mutex_destroy(&sender->lock);
	free(sender);
}

static void
init_curl(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

static int
set_up_http(struct openlineage_sender *sender, const struct provfs_config *config, char *error,
            size_t error_size)
{
	static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
	char *bearer = NULL;

	pthread_once(&curl_once, init_curl);
	sender->url = strdup(config->openlineage_url);
	sender->curl = curl_easy_init();
	if (sender->url == NULL || sender->curl == NULL) {
		snprintf(error, error_size, "openlineage: cannot set up libcurl");
		return -1;
	}
	sender->headers = curl_slist_append(NULL, "Content-Type: application/json");
	if (sender->gzip)
		sender->headers = curl_slist_append(sender->headers, "Content-Encoding: gzip");
	if (config->openlineage_api_key) {
		struct curl_slist *with_key = NULL;
		if (asprintf(&bearer, "Authorization: Bearer %s", config->openlineage_api_key) >=
		    0) {
			with_key = curl_slist_append(sender->headers, bearer);
			explicit_bzero(bearer, strlen(bearer));
			free(bearer);
		}
		if (with_key == NULL) {
			snprintf(error, error_size, "openlineage: out of memory");
			return -1;
		}
		sender->headers = with_key;
	}
	/* No "Expect: 100-continue": it costs a round trip on every event. */
	sender->headers = curl_slist_append(sender->headers, "Expect:");
	if (sender->headers == NULL) {
		snprintf(error, error_size, "openlineage: out of memory");
		return -1;
	}
	if (config->openlineage_ca_file) {
		char *bundle_path = NULL, *bundle = NULL, *extra;
		size_t bundle_length = 0, extra_length = 0;
		curl_easy_getinfo(sender->curl, CURLINFO_CAINFO, &bundle_path);
		if (bundle_path)
			bundle = read_whole(bundle_path, &bundle_length);
		extra = read_whole(config->openlineage_ca_file, &extra_length);
		if (extra == NULL) {
			snprintf(error, error_size, "openlineage: cannot read ca_file '%s': %s",
			         config->openlineage_ca_file, strerror(errno));
			free(bundle);
			return -1;
		}
		sender->ca_blob = malloc(bundle_length + extra_length + 1);
		if (sender->ca_blob == NULL) {
			free(bundle);
			free(extra);
			snprintf(error, error_size, "openlineage: out of memory");
			return -1;
		}
		if (bundle_length)
			memcpy(sender->ca_blob, bundle, bundle_length);
		memcpy(sender->ca_blob + bundle_length, extra, extra_length);
		sender->ca_blob_length = bundle_length + extra_length;
		free(bundle);
		free(extra);
	}
	return 0;
}

struct openlineage_sender *
openlineage_sender_start(const struct provfs_config *config, const char *store_path, char *error,
                         size_t error_size)
{
	struct openlineage_sender *sender = calloc(1, sizeof(*sender));
	char store_error[512];

	if (sender == NULL) {
		snprintf(error, error_size, "openlineage: out of memory");
		return NULL;
	}
	sender->fd = sender->lock_fd = -1;
	pthread_mutex_init(&sender->lock, NULL);
	pthread_condattr_t attributes;
	pthread_condattr_init(&attributes);
	pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC);
	pthread_cond_init(&sender->wake, &attributes);
	pthread_condattr_destroy(&attributes);
	sender->seed = (unsigned)(wall_clock_ns() ^ getpid());
	sender->http = strcmp(config->openlineage_transport, "http") == 0;
	sender->timeout_ms = config->openlineage_timeout_ms;
	sender->gzip =
	    config->openlineage_compression && strcmp(config->openlineage_compression, "gzip") == 0;
	if (sender->http) {
		if (set_up_http(sender, config, error, error_size))
			goto fail;
	} else {
		sender->path = strdup(config->openlineage_path);
		sender->fd = open(config->openlineage_path,
		                  O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0640);
		if (sender->fd < 0) {
			snprintf(error, error_size, "openlineage: cannot open '%s': %s",
			         config->openlineage_path, strerror(errno));
			goto fail;
		}
	}
	sender->store = store_open(store_path, STORE_READ_WRITE, config->reader_group, store_error,
	                           sizeof(store_error));
	if (sender->store == NULL) {
		snprintf(error, error_size, "openlineage: %s", store_error);
		goto fail;
	}
	char *lock_path = NULL;
	if (asprintf(&lock_path, "%s.ol-sender", store_path) >= 0) {
		sender->lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
		free(lock_path);
	}
	if (sender->lock_fd < 0) {
		snprintf(error, error_size, "openlineage: cannot create '%s.ol-sender': %s",
		         store_path, strerror(errno));
		goto fail;
	}
	if (pthread_create(&sender->thread, NULL, sender_main, sender) != 0) {
		snprintf(error, error_size, "openlineage: cannot start the sender thread");
		goto fail;
	}
	pthread_setname_np(sender->thread, "provfs-lineage");
	return sender;
fail:
	sender_free(sender);
	return NULL;
}

void
openlineage_sender_stop(struct openlineage_sender *sender)
{
	if (sender == NULL)
		return;
	pthread_mutex_lock(&sender->lock);
	atomic_store(&sender->stop, true);
	pthread_cond_broadcast(&sender->wake);
	pthread_mutex_unlock(&sender->lock);
	pthread_join(sender->thread, NULL);
	sender_free(sender);
}
