#!/bin/sh
# mkman.sh OUTDIR: the man pages, from the one source the commands already have: their --help
# texts (as help2man does), so a page cannot drift from what the program says. Writes
# OUTDIR/clawbox.1 and OUTDIR/clawbox-SUB.1 for every subcommand `clawbox --help` lists;
# clawbox-serve.1 and clawbox-proxy.1 are also the pages of those executables.
# Each page: NAME (the summary from `clawbox --help`), SYNOPSIS (the usage line), DESCRIPTION
# (the rest of --help, preformatted: its columns are kept), FILES, SEE ALSO.
set -eu
out=$1
top=$(cd "$(dirname "$0")/.." && pwd)
clawbox=$top/clawbox
version=$("$clawbox" --version | cut -d' ' -f2)
date=$(date -u -d "@${SOURCE_DATE_EPOCH:-$(git -C "$top" log -1 --format=%ct 2>/dev/null || date +%s)}" +%Y-%m-%d)
mkdir -p "$out"

# roff-safe text: backslashes, leading dots and quotes, and minus signs (so that options can
# be searched for and copied).
roff() {
	sed -e 's/\\/\\e/g' -e 's/^\([.'"'"']\)/\\\&\1/' -e 's/-/\\-/g'
}

subs=$("$clawbox" --help | sed -n 's/^  \([a-z][a-z-]*\) .*/\1/p')
see="clawbox(1)"
for s in $subs; do see="$see, clawbox-$s(1)"; done

page() { # $1 = page name, $2 = summary, then the command whose --help is the page
	name=$1 summary=$2
	shift 2
	help=$("$@" --help)
	{
		printf '.TH %s 1 "%s" "clawbox %s" "clawbox manual"\n' "$(echo "$name" | tr a-z A-Z)" \
			"$date" "$version"
		printf '.nh\n' # no hyphenation: option and page names must stay whole
		printf '.SH NAME\n%s \\- %s\n' "$(echo "$name" | roff)" "$(echo "$summary" | roff)"
		printf '.SH SYNOPSIS\n.nf\n'
		echo "$help" | sed -n '1,/^$/p' | sed -e 's/^usage: //' -e '/^$/d' | roff
		printf '.fi\n.SH DESCRIPTION\n.nf\n'
		echo "$help" | sed '1,/^$/d' | roff
		printf '.fi\n'
		printf '.SH FILES\n.nf\n'
		printf '%s\n' \
			'~/.config/clawbox/config.json   the daemon'"'"'s configuration ($XDG_CONFIG_HOME)' \
			'~/.local/share/clawbox/         its store, groups and API token ($XDG_DATA_HOME)' \
			'~/.local/state/clawbox/ask/     ask'"'"'s conversations ($XDG_STATE_HOME)' \
			'/etc/clawbox, /var/lib/clawbox  the same for root without a HOME (a service)' | roff
		printf '.fi\n.SH SEE ALSO\n%s\n' "$(echo "$see" | sed "s/, $name(1)//; s/^$name(1), //" | roff)"
	} >"$out/$name.1"
}

page clawbox "a personal AI agent platform whose security is enforced outside the agent" \
	"$clawbox"
for s in $subs; do
	summary=$("$clawbox" --help | sed -n "s/^  $s  *//p")
	page "clawbox-$s" "$summary" "$clawbox" "$s"
done
