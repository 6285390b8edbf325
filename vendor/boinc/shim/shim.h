/* C entry points for the parts of BOINC's app API that only C++ can call. */
#ifndef AGINET_BOINC_SHIM_H
#define AGINET_BOINC_SHIM_H

#include "boinc_api.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The few fields of APP_INIT_DATA (a C++ class) the app uses, copied into plain C storage. */
typedef struct AGINET_INIT_DATA {
    double ncpus;
    double checkpoint_period;
    double fraction_done_start;
    double fraction_done_end;
    char wu_name[256];
    char result_name[256];
    /* The GPU the client assigned (-1: none, or a client older than 6.13.3). */
    int gpu_device_num;
} AGINET_INIT_DATA;

/* boinc_options_defaults(), an inline C++ function. */
void aginet_boinc_options_defaults(BOINC_OPTIONS* options);
/* boinc_temporary_exit(delay, reason, is_notice); does not return on success. */
int aginet_boinc_temporary_exit(int delay, const char* reason, int is_notice);
/* boinc_finish_message(status, message, is_notice); does not return on success. */
int aginet_boinc_finish_message(int status, const char* message, int is_notice);
/* Copies fields of boinc_get_init_data() into *out; returns its status. */
int aginet_boinc_init_data(AGINET_INIT_DATA* out);

#ifdef __cplusplus
}
#endif

#endif
