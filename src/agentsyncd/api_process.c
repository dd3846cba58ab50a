/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The metrics every Prometheus exporter has: agentsync_build_info and the
 * process_* family (CPU, memory, file descriptors, start time) with the
 * names and meanings of Prometheus' own client libraries, read from
 * getrusage, getrlimit and Linux's /proc/self.
 */
#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <microhttpd.h>
#include <yyjson.h>

#include "api_int.h"

/* Open file descriptors of this process (entries of /proc/self/fd but the one reading it). */
static long open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return -1;
	long n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1;
}

/* Start time in seconds since the epoch: /proc/self/stat's starttime over btime. */
static double start_time(void)
{
	char buf[4096];
	FILE *f = fopen("/proc/self/stat", "r");
	if (!f)
		return -1;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* Field 2 (comm) may hold spaces: count from the last ')'. */
	char *p = strrchr(buf, ')');
	unsigned long long ticks = 0;
	if (!p || sscanf(p + 2,
	                 "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d "
	                 "%*d %llu",
	                 &ticks) != 1)
		return -1;
	unsigned long long btime = 0;
	f = fopen("/proc/stat", "r");
	if (!f)
		return -1;
	char line[256];
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "btime %llu", &btime) == 1)
			break;
	fclose(f);
	long hz = sysconf(_SC_CLK_TCK);
	if (!btime || hz <= 0)
		return -1;
	return (double)btime + (double)ticks / (double)hz;
}

void ags_api_emit_process(struct ags_api_text *t)
{
	ags_api_text_add(t,
	                 "# HELP agentsync_build_info The build: version and the versions of "
	                 "the libraries the daemon runs with.\n"
	                 "# TYPE agentsync_build_info gauge\n"
	                 "agentsync_build_info{version=\"%s\",gnutls=\"%s\",microhttpd=\"%s\","
	                 "yyjson=\"%s\"} 1\n",
	                 AGS_VERSION_STRING, gnutls_check_version(NULL), MHD_get_version(),
	                 YYJSON_VERSION_STRING);
	struct rusage ru;
	if (getrusage(RUSAGE_SELF, &ru) == 0)
		ags_api_text_add(t,
		                 "# HELP process_cpu_seconds_total Total user and system CPU time "
		                 "spent in seconds.\n"
		                 "# TYPE process_cpu_seconds_total counter\n"
		                 "process_cpu_seconds_total %.6f\n",
		                 (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
		                     (double)ru.ru_stime.tv_sec +
		                     (double)ru.ru_stime.tv_usec / 1e6);
	unsigned long long vsize = 0, rss = 0;
	FILE *f = fopen("/proc/self/statm", "r");
	if (f) {
		int got = fscanf(f, "%llu %llu", &vsize, &rss);
		fclose(f);
		long page = sysconf(_SC_PAGESIZE);
		if (got == 2 && page > 0)
			ags_api_text_add(
			    t,
			    "# HELP process_virtual_memory_bytes Virtual memory size in "
			    "bytes.\n"
			    "# TYPE process_virtual_memory_bytes gauge\n"
			    "process_virtual_memory_bytes %llu\n"
			    "# HELP process_resident_memory_bytes Resident memory size in "
			    "bytes.\n"
			    "# TYPE process_resident_memory_bytes gauge\n"
			    "process_resident_memory_bytes %llu\n",
			    vsize * (unsigned long long)page, rss * (unsigned long long)page);
	}
	long fds = open_fds();
	if (fds >= 0)
		ags_api_text_add(t,
		                 "# HELP process_open_fds Number of open file descriptors.\n"
		                 "# TYPE process_open_fds gauge\nprocess_open_fds %ld\n",
		                 fds);
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
		ags_api_text_add(t,
		                 "# HELP process_max_fds Maximum number of open file descriptors.\n"
		                 "# TYPE process_max_fds gauge\nprocess_max_fds %llu\n",
		                 (unsigned long long)rl.rlim_cur);
	double st = start_time();
	if (st >= 0)
		ags_api_text_add(
		    t,
		    "# HELP process_start_time_seconds Start time of the process since "
		    "unix epoch in seconds.\n"
		    "# TYPE process_start_time_seconds gauge\n"
		    "process_start_time_seconds %.2f\n",
		    st);
}
