# bash completion for meliae-cli                          -*- shell-script -*-
# SPDX-License-Identifier: MIT
#
# Installed as bash-completion/completions/meliae-cli.  The commands and
# each one's options are those of `meliae-cli COMMAND --help`
# (tests/cli/test_cli_completion.py keeps them so); files (import, diff,
# --dump, --html) fall back to bash's own completion.

_meliae_cli()
{
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
    local commands="snapshots summary growth diff referrers show top
                    dominators report import delete snap attach detach"
    local global="--store --socket --dump --json --bytes --uid --all-users
                  --help --version"
    local valued="--store|--socket|--dump|--html|--by|--sort|--since|--until|--top|--depth|--chains|--limit|--timeout|--label|--alive|--uid|--process|--pid|--interval"
    local i cmd= opts=

    COMPREPLY=()
    case $prev in
        --store) COMPREPLY=($(compgen -d -- "$cur")); return ;;
        --socket|--dump|--html) return ;;           # files: bash's default
        --by) COMPREPLY=($(compgen -W "size count" -- "$cur")); return ;;
        --sort) COMPREPLY=($(compgen -W "score bytes count slope" -- "$cur"))
                return ;;
    esac
    if [[ $prev == @($valued) ]]; then
        return                                      # a value to type
    fi
    # the command: the first word that is neither an option nor its value;
    # then how many arguments it has before the word being completed
    local nargs=0
    for ((i = 1; i < COMP_CWORD; i++)); do
        if [[ ${COMP_WORDS[i]} == @($valued) ]]; then
            ((i++))
        elif [[ ${COMP_WORDS[i]} != -* ]]; then
            if [[ -z $cmd ]]; then
                cmd=${COMP_WORDS[i]}
            else
                ((nargs++))
            fi
        fi
    done
    if [[ -z $cmd ]]; then
        if [[ $cur == -* ]]; then
            COMPREPLY=($(compgen -W "$global" -- "$cur"))
        else
            COMPREPLY=($(compgen -W "$commands" -- "$cur"))
        fi
        return
    fi
    case $cmd in
        snapshots)  opts="--since --until --process" ;;
        summary)    opts="--top --by --process" ;;
        growth)     opts="--since --until --process --by --top --sort" ;;
        diff)       opts="--top --process --across-processes" ;;
        referrers)  opts="--depth --chains --process" ;;
        show)       opts="--limit --process" ;;
        top)        opts="--retained --top --process" ;;
        dominators) opts="--process" ;;
        report)     opts="--html --process --since --until --top --alive" ;;
        import)     opts="--label --force" ;;
        delete)     opts="--uid --all-users" ;;
        snap)       opts="--timeout --pid" ;;
        attach)     opts="--socket --interval --once --label --timeout" ;;
        detach)     opts="--timeout" ;;
    esac
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$opts --help" -- "$cur"))
        return
    fi
    case $cmd in
        summary|referrers|show|top|dominators)
            # SNAP is the first argument (there is none with --dump)
            [[ $nargs -ne 0 || " ${COMP_WORDS[*]} " == *" --dump "* ]] ||
                COMPREPLY=($(compgen -W "latest latest~1 latest~2" -- "$cur")) ;;
    esac
}
shopt -s extglob 2>/dev/null
complete -o bashdefault -o default -F _meliae_cli meliae-cli
