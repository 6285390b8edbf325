// Thin C wrappers over BOINC's C++-only app API calls; see shim.h.
#include <cstring>

#include "boinc_api.h"
#include "shim.h"

extern "C" void aginet_boinc_options_defaults(BOINC_OPTIONS* options) {
    std::memset(options, 0, sizeof(*options));
    boinc_options_defaults(*options);
}

extern "C" int aginet_boinc_temporary_exit(int delay, const char* reason, int is_notice) {
    return boinc_temporary_exit(delay, reason, is_notice != 0);
}

extern "C" int aginet_boinc_finish_message(int status, const char* message, int is_notice) {
    return boinc_finish_message(status, message, is_notice != 0);
}

extern "C" int aginet_boinc_init_data(AGINET_INIT_DATA* out) {
    APP_INIT_DATA aid;
    int rc = boinc_get_init_data(aid);
    std::memset(out, 0, sizeof(*out));
    if (rc != 0) {
        return rc;
    }
    out->ncpus = aid.ncpus;
    out->checkpoint_period = aid.checkpoint_period;
    out->fraction_done_start = aid.fraction_done_start;
    out->fraction_done_end = aid.fraction_done_end;
    out->gpu_device_num = aid.gpu_device_num;
    std::strncpy(out->wu_name, aid.wu_name, sizeof(out->wu_name) - 1);
    std::strncpy(out->result_name, aid.result_name, sizeof(out->result_name) - 1);
    return 0;
}
