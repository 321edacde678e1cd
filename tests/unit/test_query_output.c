/*
 * test_query_output.c - provfs-query's text fits an 80-column terminal
 * (tools/query_output.c): wrapped lines keep every word in order, break
 * between fields when they can, leave only a single over-long word past the
 * edge, never start a Markdown line that opens a block, and a table too wide
 * prints its rows in bands that fit.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../tools/query_i.h"

static int failures;

/* query_output.c reports write errors through provfs_query.c's q_error(). */
int
q_error(struct query *q, int status, const char *fmt, ...)
{
	(void)q;
	(void)fmt;
	return status;
}

#define CHECK(cond, ...)                                                                           \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);                            \
			fprintf(stderr, __VA_ARGS__);                                              \
			fputc('\n', stderr);                                                       \
			failures++;                                                                \
		}                                                                                  \
	} while (0)

/* What the code under test printed on stdout, one string. */
static FILE *capture_file;
static int saved_stdout;

static void
capture_begin(void)
{
	fflush(stdout);
	capture_file = tmpfile();
	saved_stdout = dup(STDOUT_FILENO);
	dup2(fileno(capture_file), STDOUT_FILENO);
}

static char *
capture_end(void)
{
	static char text[65536];
	size_t n;

	fflush(stdout);
	dup2(saved_stdout, STDOUT_FILENO);
	close(saved_stdout);
	rewind(capture_file);
	n = fread(text, 1, sizeof(text) - 1, capture_file);
	text[n] = '\0';
	fclose(capture_file);
	return text;
}

/* Every line at most 80 columns, or a single word after its indentation. */
static void
check_width(const char *what, const char *text)
{
	const char *line = text;

	while (*line) {
		const char *end = strchr(line, '\n');
		size_t len = end ? (size_t)(end - line) : strlen(line);
		size_t lead = strspn(line, " ");

		if (q_text_width(line, len) > 80) {
			/* One word, or a short label and one word. */
			const char *space = memchr(line + lead, ' ', len - lead);
			const char *word = space ? space + strspn(space, " ") : NULL;
			bool labelled = space && q_text_width(line, (size_t)(space - line)) <= 16 &&
			                memchr(word, ' ', len - (size_t)(word - line)) == NULL;
			CHECK(space == NULL || labelled,
			      "%s: a line of %zu columns: %.*s", what, q_text_width(line, len), (int)len,
			      line);
		}
		line += len + (end != NULL);
	}
}

/* The words of text, in order, without the prefixes given (first line, others). */
static char *
words_of(const char *text, size_t first_prefix, size_t rest_prefix)
{
	char *out = calloc(1, strlen(text) + 1);
	const char *line = text;
	bool first = true;

	while (*line) {
		const char *end = strchr(line, '\n');
		size_t len = end ? (size_t)(end - line) : strlen(line);
		size_t skip = first ? first_prefix : rest_prefix;

		if (*out)
			strcat(out, " ");
		strncat(out, line + skip, len - skip);
		first = false;
		line += len + (end != NULL);
	}
	return out;
}

static void
test_wrap_keeps_words(void)
{
	const char *argv = "4242@1796449477 /usr/bin/python3 pipelines/train_churn_model.py "
	                   "--features features/pii/customers_2026-12-04.parquet --dimension "
	                   "warehouse/dim/customer_dimension_2026-12-04.csv --output "
	                   "models/churn/churn-model-2026-12-04.onnx  [job churn-training, run "
	                   "61b80cff]";
	char *text, *joined;

	capture_begin();
	q_print_wrapped("└─ written by ", "      ", argv);
	text = capture_end();
	check_width("argv", text);
	CHECK(strncmp(text, "└─ written by 4242@", strlen("└─ written by 4242@")) == 0, "%s",
	      text);
	joined = words_of(text, strlen("└─ written by "), 6);
	/* A break between fields ("  ") drops both spaces. */
	CHECK(strstr(argv, "  [job") && strstr(joined, "[job churn-training, run 61b80cff]"),
	      "%s", joined);
	CHECK(strncmp(joined, argv, strstr(argv, "  [job") - argv) == 0, "words lost:\n%s\n%s",
	      argv, joined);
	/* The run's bracket is not split: the break falls before it. */
	CHECK(strstr(text, "\n      [job churn-training, run 61b80cff]\n") != NULL, "%s", text);
	free(joined);
}

static void
test_long_word_alone(void)
{
	char word[121], text_in[200];
	char *text;

	memset(word, 'x', 120);
	word[0] = '/';
	word[120] = '\0';
	snprintf(text_in, sizeof(text_in), "MODIFIED %s v1", word);
	capture_begin();
	q_print_wrapped("", "    ", text_in);
	text = capture_end();
	check_width("long word", text);
	/* A short label keeps the path that overflows any line anyway. */
	CHECK(strncmp(text, "MODIFIED /xxx", 13) == 0, "%s", text);
	CHECK(strstr(text, "x\n    v1\n") != NULL, "%s", text);
	/* A longer lead does not: the path goes alone to the next line. */
	snprintf(text_in, sizeof(text_in), "read by 4242@1796449477 cat %s v1", word);
	capture_begin();
	q_print_wrapped("", "    ", text_in);
	text = capture_end();
	CHECK(strncmp(text, "read by 4242@1796449477 cat\n    /xxx", 36) == 0, "%s", text);
}

static void
test_short_text_untouched(void)
{
	char *text;

	capture_begin();
	q_print_field("  ", "recorded", "%s", "2026-12-05 05:44:43 (8s ago)");
	text = capture_end();
	CHECK(strcmp(text, "  recorded    2026-12-05 05:44:43 (8s ago)\n") == 0, "%s", text);
}

static void
test_markdown_never_opens_a_block(void)
{
	char *text;
	const char *line;

	capture_begin();
	q_print_markdown("- ", "  ",
	                 "**Produced by**: python3 train.py - --alpha 1 --beta 2 --gamma 3 "
	                 "+ 1. 2) --delta 4 --epsilon 5 --zeta 6 --eta 7 --theta 8 --iota 9 "
	                 "# > = * --kappa 10 --lambda 11 --mu 12 --nu 13 --xi 14 --omicron 15");
	text = capture_end();
	for (line = strchr(text, '\n'); line && line[1]; line = strchr(line + 1, '\n')) {
		const char *word = line + 1 + strspn(line + 1, " ");
		CHECK(!strchr("-+*=#>|", *word) && !(word[0] >= '0' && word[0] <= '9' &&
		                                     (word[1] == '.' || word[1] == ')')),
		      "a continuation line opens a block: %s", text);
	}
}

static void
test_table_bands(void)
{
	struct q_table table;
	char *text;

	q_table_init(&table, 6);
	q_table_add(&table, "warehouse/dim/customer_dimension_2026-12-04.csv", "v1", "8606ed419ac6",
	            "4.7 KiB", "2026-12-05 05:44:43 (8s ago)", "");
	q_table_add(&table, "pipelines/train.py", "v1", "92819884d685", "133 B",
	            "2026-12-05 05:44:43 (8s ago)", "executed");
	capture_begin();
	q_table_print(&table, "  ");
	text = capture_end();
	check_width("table", text);
	/* The path keeps the row's first line; the rest of the row is below it. */
	CHECK(strncmp(text, "  warehouse/dim/customer_dimension_2026-12-04.csv\n      v1  ", 60) ==
	          0,
	      "%s", text);
	CHECK(strstr(text, "\n  pipelines/train.py\n") != NULL, "%s", text);
	CHECK(strstr(text, "executed") != NULL, "%s", text);
	q_table_release(&table);

	/* A table that fits is one line a row, as before. */
	q_table_init(&table, 3);
	q_table_add(&table, "a.csv", "v1", "x");
	q_table_add(&table, "bb.csv", "v2", "y");
	capture_begin();
	q_table_print(&table, "");
	text = capture_end();
	CHECK(strcmp(text, "a.csv   v1  x\nbb.csv  v2  y\n") == 0, "%s", text);
	q_table_release(&table);
}

int
main(void)
{
	test_wrap_keeps_words();
	test_long_word_alone();
	test_short_text_untouched();
	test_markdown_never_opens_a_block();
	test_table_bands();
	if (failures)
		fprintf(stderr, "%d failure(s)\n", failures);
	return failures ? 1 : 0;
}
