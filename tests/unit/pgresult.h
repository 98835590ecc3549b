/* SPDX-License-Identifier: MIT */
/* PGresults built by hand (libpq's PQmakeEmptyPGresult), for the unit tests of the libpq
 * collectors: no server needed. Include after cmocka.h and libpq-fe.h. */
#ifndef SM_TEST_PGRESULT_H
#define SM_TEST_PGRESULT_H

#include <string.h>

/* A result with the named columns (text) and rows of cells, NULL cells being SQL NULLs. */
static inline PGresult *pgresult(const char *const *names, int cols, const char *const *cells,
                                 int rows)
{
	PGresAttDesc attrs[20];
	PGresult *res = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);

	assert_non_null(res);
	assert_true(cols <= 20);
	for (int c = 0; c < cols; c++)
		attrs[c] = (PGresAttDesc){
		    .name = (char *)names[c], .typid = 25, .typlen = -1, .atttypmod = -1};
	assert_int_equal(PQsetResultAttrs(res, cols, attrs), 1);
	for (int r = 0; r < rows; r++)
		for (int c = 0; c < cols; c++) {
			const char *v = cells[r * cols + c];

			assert_int_equal(PQsetvalue(res, r, c, (char *)v, v ? (int)strlen(v) : -1),
			                 1);
		}
	return res;
}

#endif
