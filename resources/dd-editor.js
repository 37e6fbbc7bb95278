/*
 * Editor helpers shared by the dd-* operator nodes (loaded by each nodes/dd-*.html through
 * <script src="resources/@deltaflow/node-red/dd-editor.js">; defined once).
 *  - validateInputs: a default's validator that marks a dd node invalid (red triangle) when a
 *    node that is not part of a dataflow is wired into it;
 *  - a notification when such a wire is drawn;
 *  - expression fields: a language selector plus a code editor (JavaScript, JSONata) or a text
 *    box (property path), stored in two hidden node properties;
 *  - operator: the whole editor definition of an operator node from its own properties.
 */
(function () {
  'use strict';
  if (window.DeltaFlowEditor) return;

  function isOperator(type) {
    return typeof type === 'string' && type.indexOf('dd-') === 0 && type !== 'dd-dataflow';
  }
  function canFeedOperator(type) {
    return type === 'actyx-subscribe' || isOperator(type);
  }
  function nodeLabel(node) {
    return node.name ? node.name + ' (' + node.type + ')' : node.type;
  }

  /** The nodes wired into `node` that cannot feed a dataflow operator. */
  function wrongSources(node) {
    var links = RED.nodes.filterLinks({ target: node });
    var wrong = [];
    for (var i = 0; i < links.length; i++) {
      var source = links[i].source;
      if (source && !canFeedOperator(source.type)) wrong.push(nodeLabel(source));
    }
    return wrong;
  }

  function inputProblem(node) {
    var wrong = wrongSources(node);
    if (wrong.length === 0) return null;
    return (
      'Wired from ' +
      wrong.join(', ') +
      ': dd nodes only take input from actyx-subscribe and other dd nodes of the dataflow'
    );
  }

  /** Validator (2.x/3.x style: returns true or a reason) for a default of every dd operator. */
  function validateInputs(value, opt) {
    return inputProblem(this) || true;
  }

  function revalidate(node) {
    if (!node || !isOperator(node.type)) return;
    RED.editor.validateNode(node);
    RED.view.redraw();
  }

  RED.events.on('links:add', function (link) {
    if (!link || !link.target || !isOperator(link.target.type)) return;
    if (link.source && !canFeedOperator(link.source.type)) {
      RED.notify(
        nodeLabel(link.target) +
          ': ' +
          nodeLabel(link.source) +
          ' is not part of a dataflow. ' +
          'dd nodes only take input from actyx-subscribe and other dd nodes; use actyx-publish to add events to the log.',
        { type: 'warning', timeout: 8000 },
      );
    }
    revalidate(link.target);
  });
  RED.events.on('links:remove', function (link) {
    if (link) revalidate(link.target);
  });

  var MODES = { js: 'ace/mode/nrjavascript', jsonata: 'ace/mode/jsonata' };

  /**
   * Sets up an expression field. `opts`: node (the node being edited), field (property holding the
   * text), languageField (property holding the language, or null for JavaScript only), params (the
   * JavaScript function's parameter names, for the hint).
   * Markup expected: #node-input-<field> (hidden), #node-input-<languageField> (select),
   * #node-input-<field>-editor (div for the code editor), #node-input-<field>-path (text box).
   */
  function setupExpression(opts) {
    var node = opts.node;
    var field = opts.field;
    var $text = $('#node-input-' + field);
    var $lang = opts.languageField ? $('#node-input-' + opts.languageField) : null;
    var $editorRow = $('#node-input-' + field + '-editor').parent();
    var $path = $('#node-input-' + field + '-path');
    // `shown`: where the text is now (null: only in the hidden input, before the first show).
    var state = { editor: null, language: $lang ? $lang.val() || 'js' : 'js', shown: null };

    /** The text being edited, wherever it is shown now. */
    function currentText() {
      if (state.editor) return state.editor.getValue();
      return state.shown === 'path' ? $path.val() : $text.val();
    }
    function show(language) {
      var current = currentText();
      if (state.editor) {
        state.editor.destroy();
        state.editor = null;
      }
      state.language = language;
      state.shown = language;
      if (language === 'path') {
        $editorRow.hide();
        $path.closest('.form-row').show();
        $path.val(current);
      } else {
        $path.closest('.form-row').hide();
        $editorRow.show();
        state.editor = RED.editor.createEditor({
          id: 'node-input-' + field + '-editor',
          mode: MODES[language],
          value: current,
          globals: opts.params
            ? opts.params.reduce(function (g, p) {
                g[p] = true;
                return g;
              }, {})
            : undefined,
        });
      }
    }
    show(state.language);
    if ($lang) {
      $lang.on('change', function () {
        if ($lang.val() !== state.language) show($lang.val());
      });
    }
    node['_dd_' + field] = state;
  }

  /** Copies the editor's text back into the hidden property and disposes of the editor. */
  function saveExpression(node, field) {
    var state = node['_dd_' + field];
    if (!state) return;
    var value = state.editor ? state.editor.getValue() : $('#node-input-' + field + '-path').val();
    $('#node-input-' + field).val(value);
    closeExpression(node, field);
  }

  /** Lets the code editor take the height the edit tray has to spare. */
  function resizeExpression(node, field, size) {
    var state = node['_dd_' + field];
    if (!state || !state.editor) return;
    var $div = $('#node-input-' + field + '-editor');
    var form = $('#dialog-form');
    var others = 0;
    form
      .find('> .form-row, > div > .form-row')
      .not($div.parent())
      .each(function () {
        if ($(this).is(':visible')) others += $(this).outerHeight(true);
      });
    $div.css('height', Math.max(120, size.height - others - 40) + 'px');
    state.editor.resize();
  }

  function closeExpression(node, field) {
    var state = node['_dd_' + field];
    if (state && state.editor) state.editor.destroy();
    delete node['_dd_' + field];
  }

  /**
   * Validator factory for an expression property: checks the syntax of a JavaScript function body
   * (compiled, never run), a JSONata expression or a property path, as the runtime will.
   */
  function validateExpression(languageField, params) {
    return function (value, opt) {
      var language = 'js';
      if (languageField) {
        var $lang = $('#node-input-' + languageField);
        language = ($lang.length && $lang.is(':visible') ? $lang.val() : this[languageField]) || 'js';
      }
      if (typeof value !== 'string' || value.trim() === '') return 'Enter an expression';
      try {
        if (language === 'js') {
          // eslint-disable-next-line no-new-func
          new Function(params.join(','), '"use strict";\n' + value);
        } else if (language === 'jsonata') {
          jsonata(value);
        } else if (language === 'path') {
          if (!RED.utils.validatePropertyExpression(value.replace(/^msg\./, ''))) return 'Invalid property path';
        } else {
          return 'Unknown language ' + language;
        }
      } catch (err) {
        return (language === 'jsonata' ? 'JSONata' : 'JavaScript') + ' syntax error: ' + err.message;
      }
      return true;
    };
  }

  /**
   * The editor definition of a dd operator node. Adds what every operator has: the palette
   * category and colour, one input and one output, the `name` (its validator checks the wiring) and
   * `dataflow` properties, an italic label when named, and the edit hooks of its expression fields.
   * `def`: icon, paletteLabel, label, defaults (the node's own properties), expressions
   * (`[{field, languageField, params}]`; each field gets the syntax validator of `validateExpression`
   * unless its default has its own), oneditprepare (extra setup, run before the expression fields).
   */
  function operator(def) {
    var expressions = def.expressions || [];
    var defaults = {
      name: { value: '', validate: validateInputs },
      dataflow: { value: '', type: 'dd-dataflow', required: true },
    };
    Object.keys(def.defaults || {}).forEach(function (key) {
      defaults[key] = Object.assign({}, def.defaults[key]);
    });
    expressions.forEach(function (e) {
      if (!defaults[e.field].validate) defaults[e.field].validate = validateExpression(e.languageField, e.params);
    });
    var definition = {
      category: 'dataflow',
      color: '#87A9D6',
      defaults: defaults,
      inputs: 1,
      outputs: 1,
      icon: def.icon,
      paletteLabel: def.paletteLabel,
      label: def.label,
      labelStyle: function () {
        return this.name ? 'node_label_italic' : '';
      },
    };
    if (expressions.length > 0 || def.oneditprepare) {
      definition.oneditprepare = function () {
        if (def.oneditprepare) def.oneditprepare.call(this);
        var node = this;
        expressions.forEach(function (e) {
          setupExpression({ node: node, field: e.field, languageField: e.languageField, params: e.params });
        });
      };
    }
    if (expressions.length > 0) {
      definition.oneditsave = function () {
        var node = this;
        expressions.forEach(function (e) {
          saveExpression(node, e.field);
        });
      };
      definition.oneditcancel = function () {
        var node = this;
        expressions.forEach(function (e) {
          closeExpression(node, e.field);
        });
      };
      definition.oneditresize = function (size) {
        var node = this;
        expressions.forEach(function (e) {
          resizeExpression(node, e.field, size);
        });
      };
    }
    return definition;
  }

  /**
   * A node label function: the name, else `text` followed by the property path in `field` when
   * `languageField` says it is a path ("max by timestamp"), else `text` alone.
   */
  function pathLabel(text, languageField, field) {
    return function () {
      return this.name || (this[languageField] === 'path' && this[field] ? text + ' ' + this[field] : text);
    };
  }

  /** Label shown on a node with a problem in its wiring (the red triangle carries the reason). */
  function label(node, fallback) {
    return node.name || fallback;
  }

  var LANGUAGE_NAMES = { path: 'property path', js: 'JavaScript', jsonata: 'JSONata' };

  function row(inner, style) {
    return '<div class="form-row"' + (style ? ' style="' + style + '"' : '') + '>' + inner + '</div>';
  }

  /**
   * The edit form of an operator whose only own setting is one expression field: the dataflow, the
   * language selector, the code editor (and a text box for property paths), the name. It is added
   * to the page as the node's `data-template-name` script, where the editor looks it up.
   * `form`: field, languageField, languages (e.g. ['path', 'js', 'jsonata']), languageLabel, label,
   * placeholder (for the property path).
   */
  function expressionForm(type, form) {
    var options = form.languages
      .map(function (l) {
        return '<option value="' + l + '">' + LANGUAGE_NAMES[l] + '</option>';
      })
      .join('');
    var html = [
      row(
        '<label for="node-input-dataflow"><i class="fa fa-sitemap"></i> Dataflow</label><input type="text" id="node-input-dataflow">',
      ),
      row(
        '<label for="node-input-' +
          form.languageField +
          '"><i class="fa fa-code"></i> ' +
          form.languageLabel +
          '</label>' +
          '<select id="node-input-' +
          form.languageField +
          '" style="width:70%">' +
          options +
          '</select>',
      ),
      row(
        '<label><i class="fa fa-pencil"></i> ' +
          form.label +
          '</label><input type="hidden" id="node-input-' +
          form.field +
          '">',
        'margin-bottom:0',
      ),
      '<div class="form-row node-text-editor-row"><div style="height:220px; min-height:120px" class="node-text-editor" id="node-input-' +
        form.field +
        '-editor"></div></div>',
      form.languages.indexOf('path') >= 0
        ? row(
            '<label for="node-input-' +
              form.field +
              '-path"><i class="fa fa-ellipsis-h"></i> ' +
              form.label +
              '</label>' +
              '<input type="text" id="node-input-' +
              form.field +
              '-path" style="width:70%" placeholder="' +
              form.placeholder +
              '">',
          )
        : '',
      row(
        '<label for="node-input-name"><i class="fa fa-tag"></i> Name</label><input type="text" id="node-input-name" placeholder="Name">',
      ),
    ].join('\n');
    $('script[data-template-name="' + type + '"]').remove();
    $('<script type="text/html"></script>').attr('data-template-name', type).text(html).appendTo('body');
  }

  window.DeltaFlowEditor = {
    expressionForm: expressionForm,
    validateInputs: validateInputs,
    validateExpression: validateExpression,
    inputProblem: inputProblem,
    setupExpression: setupExpression,
    saveExpression: saveExpression,
    closeExpression: closeExpression,
    resizeExpression: resizeExpression,
    label: label,
    operator: operator,
    pathLabel: pathLabel,
  };
})();
