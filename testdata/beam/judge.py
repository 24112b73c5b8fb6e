#!/usr/bin/env python3
"""Beam's own verdict on Beam YAML pipelines: the judge kubectl-beam's checks are compared against.

Runs, with apache-beam (installed from PyPI by scripts/beam-venv.sh), what Beam does before a pipeline runs:
Jinja rendering, the generic schema validation, and yaml_transform.preprocess with Beam's standard providers. With
--expand it also builds the pipeline graph (nothing runs), which is where Beam resolves every `input` name; use it
only for pipelines whose transforms construct without IO or Java.

usage: judge.py [--expand] [--jinja-variables FILE] [--search-path DIR] FILE...
prints one JSON object per pipeline: {"file": ..., "index": n, "ok": true|false, "error": "..."}
(a file with a top-level `pipelines:` list, as in Beam's tests/, gives one object per item)
"""
import argparse
import json
import sys

import yaml
import apache_beam as beam
from apache_beam.yaml import yaml_provider, yaml_transform


def judge(spec, expand):
    yaml_transform.validate_against_schema(spec, 'generic')
    providers = yaml_provider.merge_providers(
        yaml_provider.parse_providers('', spec.get('providers', [])), yaml_provider.standard_providers())
    yaml_transform.preprocess(yaml_transform.pipeline_as_composite(spec['pipeline']), known_transforms=providers.keys())
    if expand:
        pipeline = beam.Pipeline()
        yaml_transform.expand_pipeline(pipeline, spec)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--expand', action='store_true')
    parser.add_argument('--jinja-variables')
    parser.add_argument('--search-path', action='append', default=[])
    parser.add_argument('files', nargs='+')
    args = parser.parse_args()
    variables = json.load(open(args.jinja_variables)) if args.jinja_variables else {}
    for path in args.files:
        try:
            rendered = yaml_transform.expand_jinja(open(path).read(), variables, args.search_path)
            document = yaml.load(rendered, Loader=yaml_transform.SafeLineLoader)
        except Exception as error:  # pylint: disable=broad-except
            print(json.dumps({'file': path, 'index': 0, 'ok': False, 'error': f'{type(error).__name__}: {error}'}))
            continue
        specs = document.get('pipelines') if isinstance(document, dict) and 'pipelines' in document else [document]
        for index, spec in enumerate(specs):
            try:
                judge(spec, args.expand)
                print(json.dumps({'file': path, 'index': index, 'ok': True, 'error': ''}))
            except Exception as error:  # pylint: disable=broad-except
                print(json.dumps({'file': path, 'index': index, 'ok': False,
                                  'error': f'{type(error).__name__}: {str(error)[:500]}'}))
        sys.stdout.flush()


if __name__ == '__main__':
    main()
