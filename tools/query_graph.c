/*
 * query_graph.c - lineage (backward) and impact (forward): the provenance
 * graph around one file version, as text, JSON and DOT.
 *
 * DESIGN
 *
 * The graph has two kinds of node: file versions (PROV entities) and
 * processes (activities).  A process is the operating system's process
 * (host, pid, start) with all the images execve() gave it: an open handle
 * survives execve(), so a shell that opened "> out" and then exec'd python is
 * one activity.  Edges, named as W3C PROV does:
 *
 *   version --wasGeneratedBy--> process   an access of the process wrote it
 *                                         (or it is versions.producer_process_id)
 *   process --used--> version             an access of the process read it
 *   process --wasInformedBy--> process    with --run: another process of the
 *                                         same run (data may pass through pipes,
 *                                         which provfs cannot see)
 *
 * Lineage walks backward breadth-first from one version: its writers, what
 * they read, the writers of that, and so on.  Impact walks forward from a set
 * of versions (one, or every version with a hash): the processes that read
 * them, what those wrote, and so on.  Both keep a visited map, so a cycle (a
 * job that reads a file and rewrites it) ends, and both count depth in
 * process steps: --depth 1 is a version, its writers and their inputs.
 *
 * Time: a version cannot depend on what its writer opened only after it had
 * closed the version, and a process cannot pass on tainted data through a
 * file it had finished writing before it read the taint.  So lineage counts
 * a read only when it was opened before the writer's last close of that
 * version (a write never closed: every read counts), and impact follows a
 * process's writes only when closed after its first read of the tainted data
 * (close unknown: the write counts).  Each process node keeps this window;
 * when another edge widens it, only the accesses newly inside are followed.
 *
 * Cost: every step is an indexed lookup (accesses_written_version,
 * accesses_file_read, accesses_process, versions_producer, processes_pid,
 * processes_run) and each row is read once: the walk is linear in the size
 * of the answer, whatever the size of the store.
 */
#include <stdlib.h>
#include <string.h>

#include "query_i.h"

enum relation {
	REL_GENERATED, /* version -> process */
	REL_USED,      /* process -> version */
	REL_INFORMED,  /* process -> process (same run) */
};

static const char *const relation_names[] = {"wasGeneratedBy", "used", "wasInformedBy"};

/* One access of a process: the version it read or wrote, and when. */
struct io {
	int64_t version_id;
	int64_t time_ns; /* lineage reads: opened; impact writes: closed (Q_NONE unknown) */
	bool is_exec;
};

struct node {
	bool is_process;
	int64_t id; /* version id, or the process's first image row */
	int depth;
	bool start;      /* a version the walk started from */
	bool truncated;  /* not expanded: depth limit */
	bool current;    /* version: still the file's last version */
	bool has_writer; /* version: a wasGeneratedBy edge leaves it */
	bool direct;     /* process: reached by a file edge, not only as a run peer */
	/* Set by classify() once the walk is done. */
	bool reads_data;   /* process: used a version other than as a program */
	bool read_as_data; /* version: some process read it as data */
	bool read_as_exec; /* version: some process executed it */
	bool derived;      /* version: a writer of it read data */
	struct q_version version;
	struct q_process process;
	int64_t run_id;
	/* Process: the window of accesses counted so far (see DESIGN). */
	int64_t window_ns;
	bool window_all; /* no bound: every access counts */
	bool queued;
	struct io *io; /* lineage: reads; impact: writes; sorted for the window */
	size_t io_count;
	size_t io_applied;
	bool io_loaded;
};

struct edge {
	size_t from, to;
	enum relation relation;
	bool is_exec;
};

/* An open-addressing map from 64-bit keys to indexes. */
struct map {
	uint64_t *keys;
	size_t *values;
	size_t size; /* power of two */
	size_t count;
};

struct q_graph {
	struct query *q;
	bool forward;
	int max_depth; /* -1: unlimited */
	struct node *nodes;
	size_t node_count, node_alloc;
	struct edge *edges;
	size_t edge_count, edge_alloc;
	struct map node_map;  /* (kind, id) -> node */
	struct map edge_map;  /* (from, to, relation) -> edge */
	struct map image_map; /* processes row -> node of its process */
	size_t *queue;
	size_t queue_head, queue_count, queue_alloc;
	struct q_run *runs;
	size_t run_count, run_alloc;
	struct map run_map; /* run id -> runs[] */
	bool truncated;
};

/* --- map ------------------------------------------------------------------ */

static uint64_t
mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	x ^= x >> 33;
	return x;
}

#define MAP_EMPTY UINT64_MAX

static void map_put(struct map *map, uint64_t key, size_t value);

static void
map_grow(struct map *map)
{
	struct map bigger = {0};

	bigger.size = map->size ? map->size * 2 : 64;
	bigger.keys = malloc(bigger.size * sizeof(*bigger.keys));
	bigger.values = malloc(bigger.size * sizeof(*bigger.values));
	if (bigger.keys == NULL || bigger.values == NULL)
		abort();
	for (size_t i = 0; i < bigger.size; i++)
		bigger.keys[i] = MAP_EMPTY;
	for (size_t i = 0; i < map->size; i++)
		if (map->keys[i] != MAP_EMPTY)
			map_put(&bigger, map->keys[i], map->values[i]);
	free(map->keys);
	free(map->values);
	*map = bigger;
}

static void
map_put(struct map *map, uint64_t key, size_t value)
{
	size_t i;

	if ((map->count + 1) * 2 > map->size)
		map_grow(map);
	for (i = mix(key) & (map->size - 1); map->keys[i] != MAP_EMPTY;
	     i = (i + 1) & (map->size - 1)) {
		if (map->keys[i] == key) {
			map->values[i] = value;
			return;
		}
	}
	map->keys[i] = key;
	map->values[i] = value;
	map->count++;
}

static bool
map_get(const struct map *map, uint64_t key, size_t *value)
{
	if (map->size == 0)
		return false;
	for (size_t i = mix(key) & (map->size - 1); map->keys[i] != MAP_EMPTY;
	     i = (i + 1) & (map->size - 1)) {
		if (map->keys[i] == key) {
			*value = map->values[i];
			return true;
		}
	}
	return false;
}

static void
map_release(struct map *map)
{
	free(map->keys);
	free(map->values);
	memset(map, 0, sizeof(*map));
}

/* --- building ------------------------------------------------------------- */

static uint64_t
node_key(bool is_process, int64_t id)
{
	return ((uint64_t)id << 1) | (is_process ? 1 : 0);
}

static void
graph_release(struct q_graph *g)
{
	for (size_t i = 0; i < g->node_count; i++) {
		struct node *n = &g->nodes[i];
		if (n->is_process)
			q_process_release(&n->process);
		else
			q_version_release(&n->version);
		free(n->io);
	}
	for (size_t i = 0; i < g->run_count; i++)
		q_run_release(&g->runs[i]);
	free(g->runs);
	free(g->nodes);
	free(g->edges);
	free(g->queue);
	map_release(&g->node_map);
	map_release(&g->edge_map);
	map_release(&g->image_map);
	map_release(&g->run_map);
}

static void
enqueue(struct q_graph *g, size_t index)
{
	if (g->nodes[index].queued)
		return;
	if (g->queue_head + g->queue_count == g->queue_alloc) {
		g->queue_alloc = g->queue_alloc ? g->queue_alloc * 2 : 64;
		g->queue = realloc(g->queue, g->queue_alloc * sizeof(*g->queue));
		if (g->queue == NULL)
			abort();
	}
	g->queue[g->queue_head + g->queue_count++] = index;
	g->nodes[index].queued = true;
}

static struct node *
new_node(struct q_graph *g, size_t *index)
{
	if (g->node_count == g->node_alloc) {
		g->node_alloc = g->node_alloc ? g->node_alloc * 2 : 64;
		g->nodes = realloc(g->nodes, g->node_alloc * sizeof(*g->nodes));
		if (g->nodes == NULL)
			abort();
	}
	*index = g->node_count++;
	memset(&g->nodes[*index], 0, sizeof(g->nodes[0]));
	return &g->nodes[*index];
}

static bool
version_is_current(struct query *q, const struct q_version *version)
{
	sqlite3_stmt *statement =
	    q_prepare(q, "SELECT MAX(number) FROM versions WHERE file_id = ?");
	bool current = true;

	if (statement == NULL)
		return true;
	q_bind_int(statement, 1, version->file_id);
	if (q_step(q, statement) == SQLITE_ROW)
		current = sqlite3_column_int64(statement, 0) == version->number;
	sqlite3_reset(statement);
	return current;
}

/* The node of version id, loaded on first sight; -1 on a store error. */
static int
version_node(struct q_graph *g, int64_t id, int depth, size_t *index, bool *created)
{
	struct node *n;
	int rc;

	*created = false;
	if (map_get(&g->node_map, node_key(false, id), index))
		return 0;
	n = new_node(g, index);
	rc = q_version_load(g->q, id, &n->version);
	if (rc != 0) {
		g->node_count--;
		if (rc > 0)
			q_error(g->q, 2, "store is inconsistent: version %lld is missing",
			        (long long)id);
		return -1;
	}
	n->id = id;
	n->depth = depth;
	n->run_id = Q_NONE;
	n->current = version_is_current(g->q, &n->version);
	map_put(&g->node_map, node_key(false, id), *index);
	*created = true;
	return 0;
}

static void
remember_run(struct q_graph *g, int64_t run_id)
{
	size_t index;
	struct q_run run;

	if (run_id == Q_NONE || map_get(&g->run_map, (uint64_t)run_id, &index))
		return;
	if (q_run_load(g->q, run_id, &run) != 0)
		return;
	if (g->run_count == g->run_alloc) {
		g->run_alloc = g->run_alloc ? g->run_alloc * 2 : 16;
		g->runs = realloc(g->runs, g->run_alloc * sizeof(*g->runs));
		if (g->runs == NULL)
			abort();
	}
	g->runs[g->run_count] = run;
	map_put(&g->run_map, (uint64_t)run_id, g->run_count++);
}

/* The node of the process of processes row image_id; -1 on a store error. */
static int
process_node(struct q_graph *g, int64_t image_id, int depth, size_t *index, bool *created)
{
	struct q_process process;
	struct node *n;
	int rc;

	*created = false;
	if (map_get(&g->image_map, (uint64_t)image_id, index))
		return 0;
	rc = q_process_load(g->q, image_id, &process);
	if (rc != 0) {
		if (rc > 0)
			q_error(g->q, 2, "store is inconsistent: process %lld is missing",
			        (long long)image_id);
		return -1;
	}
	if (map_get(&g->node_map, node_key(true, process.id), index)) {
		map_put(&g->image_map, (uint64_t)image_id, *index);
		q_process_release(&process);
		return 0;
	}
	n = new_node(g, index);
	n->is_process = true;
	n->id = process.id;
	n->depth = depth;
	n->process = process;
	n->run_id = Q_NONE;
	for (size_t i = process.image_count; i > 0 && n->run_id == Q_NONE; i--)
		n->run_id = process.images[i - 1].run_id;
	/* An empty window: widened by the edges that reach the process. */
	n->window_ns = g->forward ? INT64_MAX : INT64_MIN;
	map_put(&g->node_map, node_key(true, process.id), *index);
	for (size_t i = 0; i < process.image_count; i++)
		map_put(&g->image_map, (uint64_t)process.images[i].id, *index);
	remember_run(g, n->run_id);
	*created = true;
	return 0;
}

static void
add_edge(struct q_graph *g, size_t from, size_t to, enum relation relation, bool is_exec)
{
	uint64_t key = ((uint64_t)from << 34) ^ ((uint64_t)to << 2) ^ (uint64_t)relation;
	size_t index;

	if (map_get(&g->edge_map, key, &index)) {
		struct edge *e = &g->edges[index];
		if (e->from == from && e->to == to && e->relation == relation) {
			e->is_exec |= is_exec;
			return;
		}
	}
	if (g->edge_count == g->edge_alloc) {
		g->edge_alloc = g->edge_alloc ? g->edge_alloc * 2 : 64;
		g->edges = realloc(g->edges, g->edge_alloc * sizeof(*g->edges));
		if (g->edges == NULL)
			abort();
	}
	if (relation == REL_GENERATED)
		g->nodes[from].has_writer = true;
	g->edges[g->edge_count] = (struct edge){from, to, relation, is_exec};
	map_put(&g->edge_map, key, g->edge_count++);
}

/*
 * Widen a process's window to include time_ns (Q_NONE: everything).
 * Returns true when the window grew, so the process must be looked at again.
 */
static bool
widen(struct q_graph *g, struct node *n, int64_t time_ns)
{
	if (n->window_all)
		return false;
	if (time_ns == Q_NONE) {
		n->window_all = true;
		return true;
	}
	if (g->forward ? time_ns < n->window_ns : time_ns > n->window_ns) {
		n->window_ns = time_ns;
		return true;
	}
	return false;
}

static int
compare_io_ascending(const void *a, const void *b)
{
	const struct io *x = a, *y = b;

	/* Unknown times sort last: they count only when the window is "all". */
	if (x->time_ns == y->time_ns)
		return x->version_id < y->version_id ? -1 : x->version_id > y->version_id;
	if (x->time_ns == Q_NONE)
		return 1;
	if (y->time_ns == Q_NONE)
		return -1;
	return x->time_ns < y->time_ns ? -1 : 1;
}

static int
compare_io_descending(const void *a, const void *b)
{
	const struct io *x = a, *y = b;

	/* Unknown close times count as "after anything": first. */
	if (x->time_ns == y->time_ns)
		return x->version_id < y->version_id ? -1 : x->version_id > y->version_id;
	if (x->time_ns == Q_NONE)
		return -1;
	if (y->time_ns == Q_NONE)
		return 1;
	return x->time_ns > y->time_ns ? -1 : 1;
}

static void
io_push(struct node *n, size_t *alloc, int64_t version_id, int64_t time_ns, bool is_exec)
{
	if (n->io_count == *alloc) {
		*alloc = *alloc ? *alloc * 2 : 16;
		n->io = realloc(n->io, *alloc * sizeof(*n->io));
		if (n->io == NULL)
			abort();
	}
	n->io[n->io_count++] = (struct io){version_id, time_ns, is_exec};
}

/* Load what a process read (lineage) or wrote (impact), in window order. */
static int
load_io(struct q_graph *g, struct node *n)
{
	struct query *q = g->q;
	size_t alloc = 0;

	for (size_t i = 0; i < n->process.image_count; i++) {
		int64_t image = n->process.images[i].id;
		sqlite3_stmt *statement;
		int rc;

		statement = q_prepare(
		    q, g->forward ? "SELECT written_version_id, closed_ns, 0 FROM accesses "
		                    "WHERE process_id = ? AND written_version_id IS NOT NULL"
		                  : "SELECT read_version_id, opened_ns, is_exec FROM accesses "
		                    "WHERE process_id = ? AND read_version_id IS NOT NULL");
		if (statement == NULL)
			return -1;
		q_bind_int(statement, 1, image);
		while ((rc = q_step(q, statement)) == SQLITE_ROW)
			io_push(n, &alloc, sqlite3_column_int64(statement, 0),
			        q_col_int(statement, 1), sqlite3_column_int(statement, 2) != 0);
		if (rc < 0)
			return -1;
		if (!g->forward)
			continue;
		/* Versions whose producer is this image but no access says so. */
		statement = q_prepare(q, "SELECT id, recorded_ns FROM versions "
		                         "WHERE producer_process_id = ?");
		if (statement == NULL)
			return -1;
		q_bind_int(statement, 1, image);
		while ((rc = q_step(q, statement)) == SQLITE_ROW)
			io_push(n, &alloc, sqlite3_column_int64(statement, 0),
			        q_col_int(statement, 1), false);
		if (rc < 0)
			return -1;
	}
	if (n->io_count)
		qsort(n->io, n->io_count, sizeof(*n->io),
		      g->forward ? compare_io_descending : compare_io_ascending);
	n->io_loaded = true;
	return 0;
}

/* Whether access io falls in the window of n. */
static bool
in_window(const struct q_graph *g, const struct node *n, const struct io *io)
{
	if (n->window_all)
		return true;
	if (io->time_ns == Q_NONE)
		return g->forward; /* unknown close: assume after the read */
	return g->forward ? io->time_ns >= n->window_ns : io->time_ns <= n->window_ns;
}

/* Lineage: a version's writers. */
static int
expand_version_backward(struct q_graph *g, size_t index)
{
	struct query *q = g->q;
	sqlite3_stmt *statement;
	struct {
		int64_t image;
		int64_t closed_ns;
	} *list = NULL;
	size_t count = 0, alloc = 0;
	int64_t producer = g->nodes[index].version.producer_id;
	int depth = g->nodes[index].depth;
	int rc, status = -1;

	statement = q_prepare(q, "SELECT process_id, MAX(closed_ns), COUNT(*) - COUNT(closed_ns) "
	                         "FROM accesses WHERE written_version_id = ? GROUP BY process_id");
	if (statement == NULL)
		return -1;
	q_bind_int(statement, 1, g->nodes[index].id);
	while ((rc = q_step(q, statement)) == SQLITE_ROW) {
		if (count == alloc) {
			alloc = alloc ? alloc * 2 : 8;
			list = realloc(list, alloc * sizeof(*list));
			if (list == NULL)
				abort();
		}
		list[count].image = sqlite3_column_int64(statement, 0);
		/* An access never closed may have written anything it read. */
		list[count].closed_ns =
		    sqlite3_column_int64(statement, 2) ? Q_NONE : q_col_int(statement, 1);
		count++;
	}
	if (rc < 0)
		goto out;
	if (count == 0 && producer == Q_NONE) {
		status = 0;
		goto out;
	}
	if (g->max_depth >= 0 && depth >= g->max_depth) {
		g->nodes[index].truncated = true;
		g->truncated = true;
		status = 0;
		goto out;
	}
	for (size_t i = 0; i <= count; i++) {
		int64_t image = i < count ? list[i].image : producer;
		int64_t closed = i < count ? list[i].closed_ns : Q_NONE;
		size_t p;
		bool created;

		if (i == count) {
			/* The producer without an access row of its own. */
			bool seen = false;
			for (size_t j = 0; j < count; j++)
				seen |= list[j].image == producer;
			if (producer == Q_NONE || seen)
				break;
		}
		if (process_node(g, image, depth + 1, &p, &created) < 0)
			goto out;
		add_edge(g, index, p, REL_GENERATED, false);
		g->nodes[p].direct = true;
		if (widen(g, &g->nodes[p], closed) || created)
			enqueue(g, p);
	}
	status = 0;
out:
	free(list);
	return status;
}

/* Impact: a version's readers. */
static int
expand_version_forward(struct q_graph *g, size_t index)
{
	struct query *q = g->q;
	sqlite3_stmt *statement;
	struct {
		int64_t image;
		int64_t opened_ns;
	} *list = NULL;
	size_t count = 0, alloc = 0;
	int depth = g->nodes[index].depth;
	int rc, status = -1;

	/* The version's file narrows the index (accesses_file_read) to its readers. */
	statement = q_prepare(q, "SELECT process_id, MIN(opened_ns) FROM accesses "
	                         "WHERE file_id = (SELECT file_id FROM versions WHERE id = ?1) "
	                         "AND read_version_id = ?1 AND (?2 IS NULL OR opened_ns >= ?2) "
	                         "GROUP BY process_id");
	if (statement == NULL)
		return -1;
	q_bind_int(statement, 1, g->nodes[index].id);
	q_bind_int(statement, 2, q->since_ns);
	while ((rc = q_step(q, statement)) == SQLITE_ROW) {
		if (count == alloc) {
			alloc = alloc ? alloc * 2 : 32;
			list = realloc(list, alloc * sizeof(*list));
			if (list == NULL)
				abort();
		}
		list[count].image = sqlite3_column_int64(statement, 0);
		list[count].opened_ns = q_col_int(statement, 1);
		count++;
	}
	if (rc < 0)
		goto out;
	if (count && g->max_depth >= 0 && depth >= g->max_depth) {
		g->nodes[index].truncated = true;
		g->truncated = true;
		status = 0;
		goto out;
	}
	for (size_t i = 0; i < count; i++) {
		size_t p;
		bool created;

		if (process_node(g, list[i].image, depth + 1, &p, &created) < 0)
			goto out;
		add_edge(g, p, index, REL_USED, false);
		g->nodes[p].direct = true;
		if (widen(g, &g->nodes[p], list[i].opened_ns) || created)
			enqueue(g, p);
	}
	status = 0;
out:
	free(list);
	return status;
}

/* Follow a process's reads (lineage) or writes (impact) inside its window. */
static int
expand_process(struct q_graph *g, size_t index)
{
	struct node *n = &g->nodes[index];

	if (!n->io_loaded && load_io(g, n) < 0)
		return -1;
	for (;;) {
		struct io io;
		size_t v;
		bool created;
		int depth;

		n = &g->nodes[index]; /* version_node() may move the array */
		if (n->io_applied >= n->io_count)
			break;
		io = n->io[n->io_applied];
		if (!in_window(g, n, &io))
			break;
		n->io_applied++;
		depth = n->depth;
		if (version_node(g, io.version_id, depth, &v, &created) < 0)
			return -1;
		if (g->forward)
			add_edge(g, v, index, REL_GENERATED, false);
		else
			add_edge(g, index, v, REL_USED, io.is_exec);
		if (created)
			enqueue(g, v);
	}
	return 0;
}

/*
 * --run: the other processes of the run, each widened to this process's
 * window (reads before it wrote, or writes after it read).
 */
static int
expand_run(struct q_graph *g, size_t index)
{
	struct query *q = g->q;
	sqlite3_stmt *statement;
	int64_t *images = NULL;
	size_t count = 0, alloc = 0;
	int rc, status = -1;

	if (g->nodes[index].run_id == Q_NONE)
		return 0;
	statement = q_prepare(q, "SELECT id FROM processes WHERE run_id = ?");
	if (statement == NULL)
		return -1;
	q_bind_int(statement, 1, g->nodes[index].run_id);
	while ((rc = q_step(q, statement)) == SQLITE_ROW) {
		if (count == alloc) {
			alloc = alloc ? alloc * 2 : 32;
			images = realloc(images, alloc * sizeof(*images));
			if (images == NULL)
				abort();
		}
		images[count++] = sqlite3_column_int64(statement, 0);
	}
	if (rc < 0)
		goto out;
	for (size_t i = 0; i < count; i++) {
		size_t p;
		bool created, grew;
		struct node *self = &g->nodes[index];
		int64_t window = self->window_all ? Q_NONE : self->window_ns;
		int depth = self->depth;

		if (process_node(g, images[i], depth, &p, &created) < 0)
			goto out;
		if (p == index)
			continue;
		grew = widen(g, &g->nodes[p], window);
		if (g->forward)
			add_edge(g, p, index, REL_INFORMED, false);
		else
			add_edge(g, index, p, REL_INFORMED, false);
		if (grew || created)
			enqueue(g, p);
	}
	status = 0;
out:
	free(images);
	return status;
}

/* Flags for summaries (report): who read data, which versions are code or derived. */
static void
classify(struct q_graph *g)
{
	for (size_t i = 0; i < g->edge_count; i++) {
		const struct edge *e = &g->edges[i];
		if (e->relation == REL_USED) {
			g->nodes[e->from].reads_data |= !e->is_exec;
			g->nodes[e->to].read_as_data |= !e->is_exec;
			g->nodes[e->to].read_as_exec |= e->is_exec;
		} else if (e->relation == REL_INFORMED) {
			g->nodes[e->from].reads_data = true;
		}
	}
	for (size_t i = 0; i < g->edge_count; i++) {
		const struct edge *e = &g->edges[i];
		if (e->relation == REL_GENERATED && g->nodes[e->to].reads_data)
			g->nodes[e->from].derived = true;
	}
}

static int
walk(struct q_graph *g)
{
	while (g->queue_count) {
		size_t index = g->queue[g->queue_head++];
		int rc;

		g->queue_count--;
		g->nodes[index].queued = false;
		if (!g->nodes[index].is_process)
			rc = g->forward ? expand_version_forward(g, index)
			                : expand_version_backward(g, index);
		else
			rc = expand_process(g, index);
		if (rc == 0 && g->nodes[index].is_process && g->nodes[index].direct &&
		    g->q->run_scope)
			rc = expand_run(g, index);
		if (rc < 0)
			return -1;
	}
	return 0;
}

/* --- output ----------------------------------------------------------------- */

static const char *
node_key_text(const struct node *n)
{
	static char buf[4][32];
	static unsigned next;
	char *s = buf[next++ % 4];

	snprintf(s, sizeof(buf[0]), "%c%lld", n->is_process ? 'p' : 'v', (long long)n->id);
	return s;
}

static const struct q_run *
run_of(const struct q_graph *g, const struct node *n)
{
	size_t index;

	if (n->run_id == Q_NONE || !map_get(&g->run_map, (uint64_t)n->run_id, &index))
		return NULL;
	return &g->runs[index];
}

static json_object *
node_json(struct q_graph *g, const struct node *n)
{
	json_object *o =
	    n->is_process ? q_process_json(g->q, &n->process) : q_version_json(&n->version);

	json_object_object_add(o, "key", json_object_new_string(node_key_text(n)));
	json_object_object_add(o, "kind",
	                       json_object_new_string(n->is_process ? "process" : "version"));
	json_object_object_add(o, "depth", json_object_new_int(n->depth));
	if (!n->is_process) {
		json_object_object_add(o, "current", json_object_new_boolean(n->current));
		json_object_object_add(o, "start", json_object_new_boolean(n->start));
		json_object_object_add(o, "truncated", json_object_new_boolean(n->truncated));
	}
	return o;
}

static json_object *
graph_json(struct q_graph *g)
{
	json_object *nodes = json_object_new_array(), *edges = json_object_new_array();
	json_object *o = json_object_new_object(), *runs = json_object_new_array();

	for (size_t i = 0; i < g->node_count; i++)
		json_object_array_add(nodes, node_json(g, &g->nodes[i]));
	for (size_t i = 0; i < g->edge_count; i++) {
		const struct edge *e = &g->edges[i];
		json_object *j = json_object_new_object();
		json_object_object_add(j, "from",
		                       json_object_new_string(node_key_text(&g->nodes[e->from])));
		json_object_object_add(j, "to",
		                       json_object_new_string(node_key_text(&g->nodes[e->to])));
		json_object_object_add(j, "relation",
		                       json_object_new_string(relation_names[e->relation]));
		if (e->relation == REL_USED)
			json_object_object_add(j, "is_exec", json_object_new_boolean(e->is_exec));
		if (e->relation == REL_INFORMED)
			json_object_object_add(j, "via", json_object_new_string("run"));
		json_object_array_add(edges, j);
	}
	for (size_t i = 0; i < g->run_count; i++)
		json_object_array_add(runs, q_run_json(&g->runs[i]));
	json_object_object_add(o, "nodes", nodes);
	json_object_object_add(o, "edges", edges);
	json_object_object_add(o, "runs", runs);
	return o;
}

/*
 * DOT: a picture people want to look at.
 *
 * Data flows forward in the drawing: sources first, the asked-about version
 * last (lineage), or the tainted version first and what it reached after it
 * (impact).  Edges are therefore drawn input -> process -> output, the
 * reverse of PROV's arrows for "used" (the PROV relation stays on every edge
 * as its tooltip, and JSON keeps PROV's direction).  Files are page-shaped
 * notes, processes rounded boxes; the processes of one run sit in a cluster
 * labeled with its job and run id; each file shows its version and short
 * hash and, when it has a classification label, is filled with the label's
 * color, explained by a legend.  A version changed outside provfs has a red
 * border and says so; an unhashed one a dashed red border.
 *
 * The drawing runs left to right unless that would be more than about
 * three times wider than tall (a long chain of a few nodes per step, as the
 * demo's nightly pipeline is), then top to bottom, so the picture fits a
 * page.  Every name and argument is data: escaped with escape_dot().
 */

/* Approximate drawn size of a node, with the gap to its neighbours (inches). */
#define DOT_NODE_WIDTH 2.0
#define DOT_NODE_HEIGHT 0.85
#define DOT_WRAP 26 /* characters per line of a wrapped label */

/* Fill colors of the usual levels; other level names get one of spare[]. */
static const char *
level_color(const char *level)
{
	static const char *const known[][2] = {
	    {"public", "#d9ead3"},       {"internal", "#cfe2f3"},
	    {"confidential", "#fce5cd"}, {"restricted", "#f4cccc"},
	    {"secret", "#ead1dc"},
	};
	static const char *const spare[] = {"#d9d2e9", "#fff2cc", "#d0e0e3", "#e6b8af"};
	unsigned hash = 0;

	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (strcmp(level, known[i][0]) == 0)
			return known[i][1];
	for (const char *p = level; *p; p++)
		hash = hash * 31 + (unsigned char)*p;
	return spare[hash % (sizeof(spare) / sizeof(spare[0]))];
}

/* The usual levels lowest first, then others by name (for the legend). */
static int
level_rank(const char *level)
{
	static const char *const order[] = {"public", "internal", "confidential", "restricted",
	                                    "secret"};

	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++)
		if (strcmp(level, order[i]) == 0)
			return (int)i;
	return (int)(sizeof(order) / sizeof(order[0]));
}

static int
compare_levels(const void *a, const void *b)
{
	const char *x = *(const char *const *)a, *y = *(const char *const *)b;
	int rx = level_rank(x), ry = level_rank(y);

	return rx != ry ? rx - ry : strcmp(x, y);
}

/* Append s escaped, broken into lines of about DOT_WRAP characters at spaces or slashes. */
static void
dot_wrapped(struct qbuf *out, const char *s, size_t max_lines)
{
	size_t len = strlen(s), lines = 0;

	while (len > 0 && lines < max_lines) {
		size_t keep = utf8_prefix(s, len, DOT_WRAP);
		if (keep < len) {
			/* Prefer to break after a '/' or at a space within the line. */
			for (size_t k = keep; k > 1; k--) {
				if (s[k - 1] == '/' || s[k] == ' ') {
					keep = k;
					break;
				}
			}
		}
		if (lines > 0)
			qbuf_adds(out, "\\n");
		if (lines + 1 == max_lines && keep < len) {
			keep = utf8_prefix(s, len, DOT_WRAP - 3);
			escape_dot(out, s, keep);
			qbuf_adds(out, "...");
			return;
		}
		escape_dot(out, s, keep);
		s += keep;
		len -= keep;
		while (len > 0 && *s == ' ') {
			s++;
			len--;
		}
		lines++;
	}
}

/* DOT: the label of a node, already escaped for the inside of a quoted string. */
static void
dot_label(struct q_graph *g, struct qbuf *out, const struct node *n)
{
	if (!n->is_process) {
		const struct q_version *v = &n->version;
		const char *path = v->path ? v->path : "?";

		dot_wrapped(out, path, 3);
		qbuf_addf(out, "\\nv%lld  %s", (long long)v->number,
		          q_short_hash(v->hash, v->hash_state));
		if (v->effective_label) {
			qbuf_adds(out, "\\n[");
			escape_dot(out, v->effective_label, strlen(v->effective_label));
			qbuf_adds(out, "]");
		}
		if (v->origin && strcmp(v->origin, "external") == 0)
			qbuf_adds(out, "\\nCHANGED OUTSIDE PROVFS");
		else if (v->hash == NULL)
			qbuf_adds(out, "\\nnot hashed");
		if (n->truncated)
			qbuf_adds(out, "\\n... (depth limit)");
		return;
	}
	const struct q_image *image = q_process_last(&n->process);
	const char *exe = image->executable ? image->executable : "?";
	const char *base = strrchr(exe, '/') ? strrchr(exe, '/') + 1 : exe;
	size_t count = image->argc;
	char *const *words = image->argv;
	struct qbuf args = QBUF_INIT;

	escape_dot(out, base, strlen(base));
	qbuf_init(&args);
	for (size_t i = 1; i < count; i++) {
		if (i > 1)
			qbuf_addc(&args, ' ');
		qbuf_adds(&args, words[i]);
	}
	if (args.len) {
		qbuf_adds(out, "\\n");
		dot_wrapped(out, args.buf, 2);
	}
	qbuf_addf(out, "\\n%s", q_process_ref(&n->process));
	qbuf_release(&args);
	(void)g;
}

/*
 * Distance in edges of every node from node 0 (the version asked about),
 * ignoring direction: the drawing's ranks, roughly.  Returns the number of
 * ranks and stores the most nodes any rank has in *breadth.
 */
static size_t
dot_ranks(const struct q_graph *g, size_t *breadth)
{
	size_t *dist = malloc(g->node_count * sizeof(*dist)), *per_rank, ranks = 0;
	bool changed = true;

	*breadth = 1;
	if (dist == NULL || g->node_count == 0) {
		free(dist);
		return g->node_count;
	}
	for (size_t i = 0; i < g->node_count; i++)
		dist[i] = SIZE_MAX;
	dist[0] = 0;
	while (changed) {
		changed = false;
		for (size_t i = 0; i < g->edge_count; i++) {
			size_t a = g->edges[i].from, b = g->edges[i].to;
			if (dist[a] != SIZE_MAX && dist[a] + 1 < dist[b]) {
				dist[b] = dist[a] + 1;
				changed = true;
			}
			if (dist[b] != SIZE_MAX && dist[b] + 1 < dist[a]) {
				dist[a] = dist[b] + 1;
				changed = true;
			}
		}
	}
	for (size_t i = 0; i < g->node_count; i++)
		if (dist[i] != SIZE_MAX && dist[i] + 1 > ranks)
			ranks = dist[i] + 1;
	per_rank = calloc(ranks ? ranks : 1, sizeof(*per_rank));
	if (per_rank) {
		for (size_t i = 0; i < g->node_count; i++)
			if (dist[i] != SIZE_MAX && ++per_rank[dist[i]] > *breadth)
				*breadth = per_rank[dist[i]];
	}
	free(per_rank);
	free(dist);
	return ranks;
}

/* Is version node n a program or script only (executed, never read as data)? */
static bool
dot_is_code(const struct node *n)
{
	return !n->is_process && n->read_as_exec && !n->read_as_data;
}

static void
print_dot(struct q_graph *g, const char *name)
{
	struct qbuf label = QBUF_INIT, title = QBUF_INIT;
	const char *levels[16];
	size_t level_count = 0, breadth, ranks = dot_ranks(g, &breadth);
	bool any_external = false, any_unhashed = false;
	/* Left to right when no wider than about 3:1, else top to bottom. */
	bool left_right = ranks * DOT_NODE_WIDTH <= 3.0 * breadth * DOT_NODE_HEIGHT + DOT_NODE_WIDTH;

	qbuf_init(&label);
	qbuf_init(&title);
	if (g->node_count > 0 && !g->nodes[0].is_process) {
		const struct q_version *v = &g->nodes[0].version;
		qbuf_adds(&title, g->forward ? "What " : "Lineage of ");
		escape_dot(&title, v->path ? v->path : "?", strlen(v->path ? v->path : "?"));
		qbuf_addf(&title, " v%lld", (long long)v->number);
		qbuf_adds(&title, g->forward ? " reached" : "");
	}
	printf("digraph \"%s\" {\n", name);
	printf("\tgraph [rankdir=%s, fontname=\"Helvetica\", fontsize=12, labelloc=t, "
	       "label=\"%s\", nodesep=0.25, ranksep=0.4, newrank=true];\n",
	       left_right ? "LR" : "TB", title.buf);
	printf("\tnode [fontname=\"Helvetica\", fontsize=10, margin=\"0.12,0.06\"];\n");
	printf("\tedge [fontname=\"Helvetica\", fontsize=8, color=\"#666666\", "
	       "arrowsize=0.7];\n");

	/* Files. */
	for (size_t i = 0; i < g->node_count; i++) {
		const struct node *n = &g->nodes[i];
		const struct q_version *v = &n->version;
		bool external, unhashed;
		struct qbuf style = QBUF_INIT;

		if (n->is_process)
			continue;
		external = v->origin && strcmp(v->origin, "external") == 0;
		unhashed = v->hash == NULL;
		any_external |= external;
		any_unhashed |= unhashed && !external;
		qbuf_init(&style);
		qbuf_addf(&style, "shape=note, style=\"filled%s\", fillcolor=\"%s\"",
		          unhashed || n->truncated ? ",dashed" : "",
		          v->effective_label ? level_color(v->effective_label)
		          : dot_is_code(n)   ? "#eeeeee"
		                             : "#ffffff");
		if (external || unhashed)
			qbuf_adds(&style, ", color=\"#cc0000\", fontcolor=\"#990000\", penwidth=2");
		else if (n->start)
			qbuf_adds(&style, ", penwidth=2.5");
		if (v->effective_label) {
			size_t k;
			for (k = 0; k < level_count; k++)
				if (strcmp(levels[k], v->effective_label) == 0)
					break;
			if (k == level_count && level_count < sizeof(levels) / sizeof(levels[0]))
				levels[level_count++] = v->effective_label;
		}
		qbuf_reset(&label);
		dot_label(g, &label, n);
		printf("\t%s [%s, label=\"%s\"];\n", node_key_text(n), style.buf, label.buf);
		qbuf_release(&style);
	}

	/* Processes, in one cluster per run. */
	for (size_t r = 0; r <= g->run_count; r++) {
		const struct q_run *run = r < g->run_count ? &g->runs[r] : NULL;
		bool opened = false;

		for (size_t i = 0; i < g->node_count; i++) {
			const struct node *n = &g->nodes[i];
			if (!n->is_process || run_of(g, n) != run)
				continue;
			if (run && !opened) {
				struct qbuf job = QBUF_INIT;
				qbuf_init(&job);
				qbuf_adds(&job, "job ");
				escape_dot(&job, run->job_name ? run->job_name : "?",
				           strlen(run->job_name ? run->job_name : "?"));
				qbuf_adds(&job, "\\nrun ");
				escape_dot(&job, run->uuid ? run->uuid : "?",
				           run->uuid ? utf8_prefix(run->uuid, strlen(run->uuid), 8) : 1);
				printf("\tsubgraph \"cluster_run_%lld\" {\n", (long long)run->id);
				printf("\t\tstyle=\"rounded,filled\"; fillcolor=\"#f5f5f5\"; "
				       "color=\"#aaaaaa\"; fontsize=10;\n");
				/*
				 * Top to bottom, edges enter a cluster through its top, where
				 * its label would be: the label is a node beside the first
				 * process instead.
				 */
				if (left_right)
					printf("\t\tlabel=\"%s\";\n", job.buf);
				else
					printf("\t\tlabel=\"\"; \"run_%lld\" [shape=plaintext, "
					       "fontsize=9, fontcolor=\"#444444\", label=\"%s\"];\n"
					       "\t\t{ rank=same; \"run_%lld\"; %s; }\n",
					       (long long)run->id, job.buf, (long long)run->id,
					       node_key_text(n));
				qbuf_release(&job);
				opened = true;
			}
			qbuf_reset(&label);
			dot_label(g, &label, n);
			printf("\t%s%s [shape=box, style=\"rounded,filled\", fillcolor=\"#dae8fc\", "
			       "color=\"#6c8ebf\", label=\"%s\"];\n",
			       opened ? "\t" : "", node_key_text(n), label.buf);
		}
		if (opened)
			printf("\t}\n");
	}

	/* Edges in the direction data flowed; PROV's relation as the tooltip. */
	for (size_t i = 0; i < g->edge_count; i++) {
		const struct edge *e = &g->edges[i];
		const struct node *from = &g->nodes[e->from], *to = &g->nodes[e->to];

		if (e->relation == REL_USED)
			printf("\t%s -> %s [tooltip=\"used\"%s];\n", node_key_text(to),
			       node_key_text(from),
			       e->is_exec ? ", style=dashed, label=\"ran\"" : "");
		else if (e->relation == REL_GENERATED)
			printf("\t%s -> %s [tooltip=\"wasGeneratedBy\", penwidth=1.3];\n",
			       node_key_text(to), node_key_text(from));
		else
			printf("\t%s -> %s [tooltip=\"wasInformedBy\", style=dotted, "
			       "constraint=false, label=\"same run\"];\n",
			       node_key_text(to), node_key_text(from));
	}

	/* The legend: what the colors and borders mean, when they appear. */
	qsort(levels, level_count, sizeof(levels[0]), compare_levels);
	if (level_count || any_external || any_unhashed) {
		printf("\tsubgraph cluster_legend {\n");
		printf("\t\tlabel=\"legend\"; fontsize=9; style=rounded; color=\"#cccccc\";\n");
		for (size_t k = 0; k < level_count; k++) {
			qbuf_reset(&label);
			escape_dot(&label, levels[k], strlen(levels[k]));
			printf("\t\t\"legend_%zu\" [shape=note, style=filled, fillcolor=\"%s\", "
			       "fontsize=9, label=\"%s\"];\n",
			       k, level_color(levels[k]), label.buf);
		}
		if (any_external)
			printf("\t\tlegend_external [shape=note, style=filled, fillcolor=\"#ffffff\", "
			       "color=\"#cc0000\", penwidth=2, fontsize=9, "
			       "label=\"changed outside provfs\"];\n");
		if (any_unhashed)
			printf("\t\tlegend_unhashed [shape=note, style=\"filled,dashed\", "
			       "fillcolor=\"#ffffff\", color=\"#cc0000\", penwidth=2, fontsize=9, "
			       "label=\"not hashed\"];\n");
		/* One column: stacked by invisible edges top to bottom, by rank left to right. */
		printf("\t\t%s", left_right ? "{ rank=same; " : "");
		for (size_t k = 0; k < level_count; k++)
			printf("%s\"legend_%zu\"", k && !left_right ? " -> " : " ", k);
		if (any_external)
			printf("%slegend_external", level_count && !left_right ? " -> " : " ");
		if (any_unhashed)
			printf("%slegend_unhashed",
			       (level_count || any_external) && !left_right ? " -> " : " ");
		printf("%s\n", left_right ? " }" : " [style=invis];");
		printf("\t}\n");
	}
	printf("}\n");
	qbuf_release(&label);
	qbuf_release(&title);
}

/* Text: one node's line (without the tree prefix). */
static void
node_line(struct q_graph *g, struct qbuf *out, const struct node *n, const struct edge *via)
{
	struct query *q = g->q;

	if (n->is_process) {
		const struct q_run *run = run_of(g, n);
		if (via && via->relation == REL_INFORMED)
			qbuf_adds(out, "same run: ");
		else
			qbuf_adds(out, g->forward ? "read by " : "written by ");
		q_process_line(q, out, &n->process);
		if (run) {
			qbuf_adds(out, "  [");
			q_run_line(q, out, run);
			qbuf_addc(out, ']');
		}
		return;
	}
	if (g->forward && via)
		qbuf_adds(out, "wrote ");
	q_version_line(q, out, &n->version);
	if (via && via->is_exec)
		qbuf_adds(out, "  (executed)");
	if (n->version.origin && strcmp(n->version.origin, "external") == 0)
		qbuf_adds(out, "  CHANGED OUTSIDE PROVFS");
	else if (n->version.origin && strcmp(n->version.origin, "initial") == 0 && !g->forward)
		qbuf_adds(out, "  (first seen: history unknown)");
	if (!n->current)
		qbuf_adds(out, "  (superseded)");
	if (n->truncated)
		qbuf_adds(out, "  ... (depth limit)");
}

struct adjacency {
	size_t *first; /* per node: index into order[] */
	size_t *count;
	size_t *order; /* edge indexes grouped by the node they lead away from */
};

/* Children in the printed tree: lineage follows edges forward (from -> to),
 * impact follows them backward (to -> from), so both read away from the start. */
static void
adjacency_build(struct q_graph *g, struct adjacency *a)
{
	size_t *fill;

	a->first = calloc(g->node_count + 1, sizeof(size_t));
	a->count = calloc(g->node_count + 1, sizeof(size_t));
	a->order = calloc(g->edge_count + 1, sizeof(size_t));
	fill = calloc(g->node_count + 1, sizeof(size_t));
	if (!a->first || !a->count || !a->order || !fill)
		abort();
	for (size_t i = 0; i < g->edge_count; i++)
		a->count[g->forward ? g->edges[i].to : g->edges[i].from]++;
	for (size_t i = 1; i < g->node_count; i++)
		a->first[i] = a->first[i - 1] + a->count[i - 1];
	for (size_t i = 0; i < g->edge_count; i++) {
		size_t parent = g->forward ? g->edges[i].to : g->edges[i].from;
		a->order[a->first[parent] + fill[parent]++] = i;
	}
	free(fill);
}

static void
adjacency_release(struct adjacency *a)
{
	free(a->first);
	free(a->count);
	free(a->order);
}

struct tree_frame {
	size_t node;
	size_t next; /* next child position */
	size_t prefix_len;
};

/* Print the tree below root; nodes printed before are shown once, then "see above". */
static void
print_tree(struct q_graph *g, size_t root)
{
	struct query *q = g->q;
	struct adjacency a;
	struct tree_frame *stack;
	size_t depth = 0;
	bool *printed = calloc(g->node_count + 1, sizeof(bool));
	struct qbuf prefix = QBUF_INIT, line = QBUF_INIT, first = QBUF_INIT, rest = QBUF_INIT;

	adjacency_build(g, &a);
	stack = calloc(g->node_count + 2, sizeof(*stack));
	if (!printed || !stack)
		abort();
	qbuf_init(&prefix);
	qbuf_init(&line);
	qbuf_init(&first);
	qbuf_init(&rest);
	node_line(g, &line, &g->nodes[root], NULL);
	/* A wrapped node continues above the stem that leads to its children. */
	q_print_wrapped("", q_tree_stem(q, a.count[root] == 0), line.buf);
	printed[root] = true;
	stack[0] = (struct tree_frame){root, 0, 0};
	while (true) {
		struct tree_frame *top = &stack[depth];
		size_t n = top->node;

		if (top->next >= a.count[n]) {
			if (depth == 0)
				break;
			depth--;
			prefix.len = stack[depth + 1].prefix_len;
			prefix.buf[prefix.len] = '\0';
			continue;
		}
		size_t e = a.order[a.first[n] + top->next++];
		bool last = top->next == a.count[n];
		size_t child = g->forward ? g->edges[e].from : g->edges[e].to;

		qbuf_reset(&line);
		node_line(g, &line, &g->nodes[child], &g->edges[e]);
		if (printed[child] && a.count[child])
			qbuf_adds(&line, "  (see above)");
		qbuf_reset(&first);
		qbuf_addf(&first, "%s%s", prefix.buf, q_tree_branch(q, last));
		qbuf_reset(&rest);
		qbuf_addf(&rest, "%s%s%s", prefix.buf, q_tree_stem(q, last),
		          q_tree_stem(q, printed[child] || a.count[child] == 0));
		q_print_wrapped(first.buf, rest.buf, line.buf);
		if (printed[child])
			continue;
		printed[child] = true;
		stack[++depth] = (struct tree_frame){child, 0, prefix.len};
		qbuf_adds(&prefix, q_tree_stem(q, last));
	}
	free(printed);
	free(stack);
	adjacency_release(&a);
	qbuf_release(&prefix);
	qbuf_release(&line);
	qbuf_release(&first);
	qbuf_release(&rest);
}

/* --- lineage ---------------------------------------------------------------- */

int
cmd_lineage(struct query *q)
{
	struct q_graph g = {0};
	struct q_target target;
	struct q_version version;
	size_t index;
	bool created;
	int status, rc;

	status = q_resolve(q, q->args[0], q->at_ns, &target);
	if (status)
		return status;
	if (q->at_ns != Q_NONE)
		rc = q_version_at(q, target.file_id, q->at_ns, &version);
	else
		rc = q_version_find(q, target.file_id, q->version, &version);
	if (rc != 0) {
		if (rc < 0)
			status = 2;
		else if (q->version != Q_NONE)
			status = q_error(q, 1, "%s: has no version %lld", q->args[0],
			                 (long long)q->version);
		else if (q->at_ns != Q_NONE)
			status = q_error(q, 1, "%s: no version was recorded by then", q->args[0]);
		else
			status = q_error(q, 1, "%s: no version recorded", q->args[0]);
		goto out;
	}
	g.q = q;
	g.max_depth = q->depth;
	if (version_node(&g, version.id, 0, &index, &created) < 0) {
		status = 2;
		goto out;
	}
	g.nodes[index].start = true;
	enqueue(&g, index);
	if (walk(&g) < 0) {
		status = 2;
		goto out;
	}
	switch (q->format) {
	case Q_FORMAT_JSON: {
		json_object *doc = q_jdoc(q), *graph = graph_json(&g);
		json_object_object_add(doc, "start",
		                       json_object_new_string(node_key_text(&g.nodes[0])));
		json_object_object_add(doc, "depth",
		                       q->depth >= 0 ? json_object_new_int(q->depth) : NULL);
		json_object_object_add(doc, "scope",
		                       json_object_new_string(q->run_scope ? "run" : "process"));
		json_object_object_add(doc, "truncated", json_object_new_boolean(g.truncated));
		json_object_object_foreach(graph, key, value)
		{
			json_object_object_add(doc, key, json_object_get(value));
		}
		json_object_put(graph);
		status = q_emit_json(q, doc);
		break;
	}
	case Q_FORMAT_DOT:
		print_dot(&g, "lineage");
		break;
	default:
		print_tree(&g, 0);
		if (g.truncated)
			printf("(stopped at --depth %d)\n", q->depth);
		break;
	}
out:
	q_version_release(&version);
	q_target_release(&target);
	graph_release(&g);
	return status;
}

/* --- impact ----------------------------------------------------------------- */

/* How a run stands to the tainted versions. */
enum run_status {
	RUN_DIRECT,  /* a process of it read a start version */
	RUN_DERIVED, /* it read only something derived from one */
	RUN_OTHER,   /* it read other versions of the start files only: not affected */
};

static const char *const run_status_names[] = {"read", "derived", "unaffected"};

struct run_answer {
	int64_t run_id;
	enum run_status status;
	int64_t version_id; /* what it read: a start version, or another version */
	int64_t first_ns;   /* earliest such read */
};

static int
compare_answers(const void *a, const void *b)
{
	const struct run_answer *x = a, *y = b;

	if (x->status != y->status)
		return x->status < y->status ? -1 : 1;
	return x->first_ns < y->first_ns ? -1 : x->first_ns > y->first_ns;
}

static void
answer_add(struct run_answer **list, size_t *count, size_t *alloc, struct map *seen,
           struct run_answer answer)
{
	size_t index;

	if (map_get(seen, (uint64_t)answer.run_id, &index)) {
		struct run_answer *old = &(*list)[index];
		if (answer.status < old->status ||
		    (answer.status == old->status && answer.first_ns < old->first_ns))
			*old = answer;
		return;
	}
	if (*count == *alloc) {
		*alloc = *alloc ? *alloc * 2 : 16;
		*list = realloc(*list, *alloc * sizeof(**list));
		if (*list == NULL)
			abort();
	}
	(*list)[*count] = answer;
	map_put(seen, (uint64_t)answer.run_id, (*count)++);
}

/*
 * Classify runs: those of the processes in the graph (direct readers of a
 * start version, or readers of something derived), and the runs that read
 * only other versions of the start files in the same period.
 */
static int
classify_runs(struct q_graph *g, struct run_answer **result, size_t *result_count)
{
	struct query *q = g->q;
	struct run_answer *list = NULL;
	size_t count = 0, alloc = 0;
	struct map seen = {0}, files = {0};
	int status = -1;

	for (size_t i = 0; i < g->edge_count; i++) {
		const struct edge *e = &g->edges[i];
		const struct node *p = &g->nodes[e->from], *v = &g->nodes[e->to];
		int64_t first = p->window_all ? Q_NONE : p->window_ns;

		if (e->relation != REL_USED || p->run_id == Q_NONE)
			continue;
		answer_add(&list, &count, &alloc, &seen,
		           (struct run_answer){p->run_id, v->start ? RUN_DIRECT : RUN_DERIVED,
		                               v->id, first == Q_NONE ? INT64_MAX : first});
	}
	for (size_t i = 0; i < g->node_count; i++) {
		const struct node *n = &g->nodes[i];
		size_t dummy;
		sqlite3_stmt *statement;
		int rc;

		if (n->is_process || !n->start ||
		    map_get(&files, (uint64_t)n->version.file_id, &dummy))
			continue;
		map_put(&files, (uint64_t)n->version.file_id, i);
		statement =
		    q_prepare(q, "SELECT p.run_id, a.read_version_id, MIN(a.opened_ns) "
		                 "FROM accesses a JOIN processes p ON p.id = a.process_id "
		                 "WHERE a.file_id = ?1 AND a.read_version_id IS NOT NULL "
		                 "AND (?2 IS NULL OR a.opened_ns >= ?2) AND p.run_id IS NOT NULL "
		                 "GROUP BY p.run_id, a.read_version_id");
		if (statement == NULL)
			goto out;
		q_bind_int(statement, 1, n->version.file_id);
		q_bind_int(statement, 2, q->since_ns);
		while ((rc = q_step(q, statement)) == SQLITE_ROW) {
			int64_t version_id = sqlite3_column_int64(statement, 1);
			size_t v;
			if (map_get(&g->node_map, node_key(false, version_id), &v) &&
			    g->nodes[v].start)
				continue;
			answer_add(&list, &count, &alloc, &seen,
			           (struct run_answer){sqlite3_column_int64(statement, 0),
			                               RUN_OTHER, version_id,
			                               q_col_int(statement, 2)});
		}
		if (rc < 0)
			goto out;
	}
	/* Runs outside the graph must be loaded to be printed. */
	for (size_t i = 0; i < count; i++)
		remember_run(g, list[i].run_id);
	if (count > 1) /* list is NULL when nothing was found: not for qsort */
		qsort(list, count, sizeof(*list), compare_answers);
	*result = list;
	*result_count = count;
	list = NULL;
	status = 0;
out:
	free(list);
	map_release(&seen);
	map_release(&files);
	return status;
}

/* The start versions: --hash, --version, --since's window, else the current one. */
static int
impact_starts(struct query *q, struct q_graph *g, const struct q_target *target, bool have_target)
{
	sqlite3_stmt *statement;
	int found = 0;

	if (q->hash) {
		char upper[40];
		snprintf(upper, sizeof(upper), "%s~", q->hash); /* '~' sorts after hex digits */
		statement = q_prepare(q, "SELECT id FROM versions WHERE hash >= ?1 AND hash < ?2 "
		                         "ORDER BY id");
		if (statement == NULL)
			return -1;
		sqlite3_bind_text(statement, 1, q->hash, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(statement, 2, upper, -1, SQLITE_TRANSIENT);
	} else if (q->version != Q_NONE) {
		statement =
		    q_prepare(q, "SELECT id FROM versions WHERE file_id = ? AND number = ?");
		if (statement == NULL)
			return -1;
		q_bind_int(statement, 1, target->file_id);
		q_bind_int(statement, 2, q->version);
	} else if (q->since_ns != Q_NONE) {
		statement = q_prepare(q, "SELECT id FROM versions WHERE file_id = ? AND "
		                         "recorded_ns >= ? ORDER BY number");
		if (statement == NULL)
			return -1;
		q_bind_int(statement, 1, target->file_id);
		q_bind_int(statement, 2, q->since_ns);
	} else {
		statement = q_prepare(q, "SELECT id FROM versions WHERE file_id = ? "
		                         "ORDER BY number DESC LIMIT 1");
		if (statement == NULL)
			return -1;
		q_bind_int(statement, 1, target->file_id);
	}
	(void)have_target;
	/* Collect first: version_node() uses other statements. */
	int64_t *ids = NULL;
	size_t count = 0;
	if (q_collect_ids(q, statement, &ids, &count) < 0)
		return -1;
	for (size_t i = 0; i < count; i++) {
		size_t index;
		bool created;
		if (version_node(g, ids[i], 0, &index, &created) < 0) {
			free(ids);
			return -1;
		}
		g->nodes[index].start = true;
		enqueue(g, index);
		found++;
	}
	free(ids);
	return found;
}

static void
print_impact_text(struct q_graph *g, struct run_answer *answers, size_t answer_count)
{
	struct query *q = g->q;
	struct qbuf line = QBUF_INIT;
	size_t derived = 0, current = 0;

	qbuf_init(&line);
	for (size_t i = 0; i < g->node_count; i++) {
		const struct node *n = &g->nodes[i];
		if (!n->start)
			continue;
		if (i)
			putchar('\n');
		print_tree(g, i);
	}
	for (size_t i = 0; i < g->node_count; i++) {
		const struct node *n = &g->nodes[i];
		if (!n->is_process && !n->start) {
			derived++;
			current += n->current;
		}
	}
	printf("\n%zu file version%s derived (%zu still current)\n", derived,
	       derived == 1 ? "" : "s", current);
	if (g->truncated)
		printf("(stopped at --depth %d: more may be derived)\n", q->depth);
	for (int status = RUN_DIRECT; status <= RUN_OTHER; status++) {
		size_t n = 0;
		for (size_t i = 0; i < answer_count; i++)
			n += answers[i].status == (enum run_status)status;
		if (n == 0)
			continue;
		printf("\n%s (%zu):\n",
		       status == RUN_DIRECT ? "runs that read it"
		       : status == RUN_DERIVED
		           ? "runs that read something derived from it"
		           : "runs that read other versions only (not affected)",
		       n);
		for (size_t i = 0; i < answer_count; i++) {
			const struct run_answer *a = &answers[i];
			size_t r, v;
			if (a->status != (enum run_status)status ||
			    !map_get(&g->run_map, (uint64_t)a->run_id, &r))
				continue;
			qbuf_reset(&line);
			qbuf_addf(&line, "%s  ", q_when(q, g->runs[r].started_ns));
			q_run_line(q, &line, &g->runs[r]);
			if (map_get(&g->node_map, node_key(false, a->version_id), &v)) {
				const struct q_version *ver = &g->nodes[v].version;
				qbuf_addf(&line, "  read %s v%lld %s", q_tx(q, ver->path),
				          (long long)ver->number,
				          q_short_hash(ver->hash, ver->hash_state));
			} else {
				struct q_version other;
				if (q_version_load(q, a->version_id, &other) == 0) {
					qbuf_addf(&line, "  read %s v%lld %s", q_tx(q, other.path),
					          (long long)other.number,
					          q_short_hash(other.hash, other.hash_state));
					q_version_release(&other);
				}
			}
			q_print_wrapped("  ", "      ", line.buf);
		}
	}
	qbuf_release(&line);
}

int
cmd_impact(struct query *q)
{
	struct q_graph g = {0};
	struct q_target target = {0};
	struct run_answer *answers = NULL;
	size_t answer_count = 0;
	bool have_target = q->nargs > 0;
	int status = 0, found;

	if (have_target) {
		status = q_resolve(q, q->args[0], Q_NONE, &target);
		if (status)
			return status;
	}
	g.q = q;
	g.forward = true;
	g.max_depth = q->depth;
	found = impact_starts(q, &g, &target, have_target);
	if (found < 0) {
		status = 2;
		goto out;
	}
	if (found == 0) {
		if (q->hash)
			status = q_error(q, 1, "no version with hash %s was recorded", q->hash);
		else if (q->version != Q_NONE)
			status = q_error(q, 1, "%s: has no version %lld", q->args[0],
			                 (long long)q->version);
		else if (q->since_ns != Q_NONE)
			status =
			    q_error(q, 1, "%s: no version was recorded since then", q->args[0]);
		else
			status = q_error(q, 1, "%s: no version recorded", q->args[0]);
		goto out;
	}
	if (walk(&g) < 0 || classify_runs(&g, &answers, &answer_count) < 0) {
		status = 2;
		goto out;
	}
	switch (q->format) {
	case Q_FORMAT_JSON: {
		json_object *doc = q_jdoc(q), *graph = graph_json(&g);
		json_object *starts = json_object_new_array(), *runs = json_object_new_array();
		for (size_t i = 0; i < g.node_count; i++)
			if (g.nodes[i].start)
				json_object_array_add(
				    starts, json_object_new_string(node_key_text(&g.nodes[i])));
		json_object_object_add(doc, "start", starts);
		json_object_object_add(doc, "depth",
		                       q->depth >= 0 ? json_object_new_int(q->depth) : NULL);
		json_object_object_add(doc, "since", q_jtime(q->since_ns));
		json_object_object_add(doc, "scope",
		                       json_object_new_string(q->run_scope ? "run" : "process"));
		json_object_object_add(doc, "truncated", json_object_new_boolean(g.truncated));
		json_object_object_foreach(graph, key, value)
		{
			if (strcmp(key, "runs") != 0)
				json_object_object_add(doc, key, json_object_get(value));
		}
		json_object_put(graph);
		for (size_t i = 0; i < answer_count; i++) {
			size_t r;
			json_object *j;
			if (!map_get(&g.run_map, (uint64_t)answers[i].run_id, &r))
				continue;
			j = q_run_json(&g.runs[r]);
			json_object_object_add(
			    j, "impact",
			    json_object_new_string(run_status_names[answers[i].status]));
			json_object_object_add(j, "read_version_id", q_jint(answers[i].version_id));
			json_object_array_add(runs, j);
		}
		json_object_object_add(doc, "runs", runs);
		status = q_emit_json(q, doc);
		break;
	}
	case Q_FORMAT_DOT:
		print_dot(&g, "impact");
		break;
	default:
		print_impact_text(&g, answers, answer_count);
		break;
	}
out:
	free(answers);
	q_target_release(&target);
	graph_release(&g);
	return status;
}

/* --- the lineage for other commands ------------------------------------------ */

struct q_graph *
q_lineage_build(struct query *q, int64_t version_id)
{
	struct q_graph *g = calloc(1, sizeof(*g));
	size_t index;
	bool created;

	if (g == NULL)
		abort();
	g->q = q;
	g->max_depth = q->depth;
	if (version_node(g, version_id, 0, &index, &created) < 0)
		goto fail;
	g->nodes[index].start = true;
	enqueue(g, index);
	if (walk(g) < 0)
		goto fail;
	classify(g);
	return g;
fail:
	q_graph_free(g);
	return NULL;
}

void
q_graph_free(struct q_graph *graph)
{
	if (graph == NULL)
		return;
	graph_release(graph);
	free(graph);
}

size_t
q_graph_count(const struct q_graph *graph)
{
	return graph->node_count;
}

const struct q_version *
q_graph_version(const struct q_graph *graph, size_t i)
{
	return graph->nodes[i].is_process ? NULL : &graph->nodes[i].version;
}

const struct q_process *
q_graph_process(const struct q_graph *graph, size_t i)
{
	return graph->nodes[i].is_process ? &graph->nodes[i].process : NULL;
}

const struct q_run *
q_graph_run(const struct q_graph *graph, size_t i)
{
	return run_of(graph, &graph->nodes[i]);
}

bool
q_graph_has_producer(const struct q_graph *graph, size_t i)
{
	return graph->nodes[i].has_writer || graph->nodes[i].truncated;
}

bool
q_graph_is_code(const struct q_graph *graph, size_t i)
{
	return graph->nodes[i].read_as_exec && !graph->nodes[i].read_as_data;
}

bool
q_graph_is_source(const struct q_graph *graph, size_t i)
{
	return !graph->nodes[i].derived && !graph->nodes[i].truncated;
}

bool
q_graph_truncated(const struct q_graph *graph)
{
	return graph->truncated;
}

/* --- impact for other commands ------------------------------------------------ */

struct q_graph *
q_impact_build(struct query *q, const int64_t *version_ids, size_t count)
{
	struct q_graph *g = calloc(1, sizeof(*g));

	if (g == NULL)
		abort();
	g->q = q;
	g->forward = true;
	g->max_depth = q->depth;
	for (size_t i = 0; i < count; i++) {
		size_t index;
		bool created;
		if (version_node(g, version_ids[i], 0, &index, &created) < 0)
			goto fail;
		g->nodes[index].start = true;
		enqueue(g, index);
	}
	if (walk(g) < 0)
		goto fail;
	classify(g);
	return g;
fail:
	q_graph_free(g);
	return NULL;
}
