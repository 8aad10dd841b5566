/* Outcome names and the OK / CORRUPTED decision on hand-made parameter arrays. */
#include "fixgrid/eval.h"

#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

Test(outcome, names_round_trip)
{
    const char *want[] = {"OK", "UNADAPTABLE", "FAILURE", "CORRUPTED"};
    cr_assert_eq(FG_OUTCOME_COUNT, 4);
    for (int i = 0; i < FG_OUTCOME_COUNT; i++) {
        cr_expect_str_eq(fg_outcome_name((fg_outcome)i), want[i]);
        fg_outcome o;
        cr_assert_eq(fg_outcome_parse(want[i], &o), FG_OK);
        cr_expect_eq((int)o, i);
    }
    fg_outcome o;
    cr_expect_eq(fg_outcome_parse("ok", &o), FG_ERR_NOTFOUND);
    cr_expect_eq(fg_outcome_parse(NULL, &o), FG_ERR_NOTFOUND);
    cr_expect_str_eq(fg_outcome_name(FG_OUTCOME_COUNT), "?");
}

Test(outcome, classify)
{
    float p[4] = {0.5f, -1.0f, 2.0f, 0.0f};
    float s[2] = {0.0f, 1.0f};
    char why[128];
    /* healthy: finite, above the majority rate */
    cr_expect_eq(fg_eval_outcome(p, 4, s, 2, 85.0, 10.0, why, sizeof why), FG_OUTCOME_OK);
    cr_expect_str_eq(why, "");
    /* at the majority rate: a constant guess */
    cr_expect_eq(fg_eval_outcome(p, 4, s, 2, 10.0, 10.0, why, sizeof why), FG_OUTCOME_CORRUPTED);
    cr_expect(strstr(why, "majority") != NULL, "%s", why);
    cr_expect_eq(fg_eval_outcome(p, 4, s, 2, 9.99, 10.0, NULL, 0), FG_OUTCOME_CORRUPTED);
    cr_expect_eq(fg_eval_outcome(p, 4, s, 2, 10.01, 10.0, NULL, 0), FG_OUTCOME_OK);
    /* non-finite parameter, even with a good accuracy */
    p[2] = NAN;
    cr_expect_eq(fg_eval_outcome(p, 4, s, 2, 99.0, 10.0, why, sizeof why), FG_OUTCOME_CORRUPTED);
    cr_expect(strstr(why, "parameter 2") != NULL, "%s", why);
    p[2] = -INFINITY;
    cr_expect_eq(fg_eval_outcome(p, 4, NULL, 0, 99.0, 10.0, NULL, 0), FG_OUTCOME_CORRUPTED);
    p[2] = 2.0f;
    /* non-finite batch-norm state */
    s[1] = INFINITY;
    cr_expect_eq(fg_eval_outcome(p, 4, s, 2, 99.0, 10.0, why, sizeof why), FG_OUTCOME_CORRUPTED);
    cr_expect(strstr(why, "state value 1") != NULL, "%s", why);
    /* no state at all is fine */
    cr_expect_eq(fg_eval_outcome(p, 4, NULL, 0, 99.0, 10.0, NULL, 0), FG_OUTCOME_OK);
    /* NaN accuracy */
    cr_expect_eq(fg_eval_outcome(p, 4, NULL, 0, NAN, 10.0, NULL, 0), FG_OUTCOME_CORRUPTED);
    /* the reason is truncated, never overflows */
    char tiny[8];
    fg_eval_outcome(p, 4, NULL, 0, 1.0, 10.0, tiny, sizeof tiny);
    cr_expect_eq(strlen(tiny), 7u);
}
